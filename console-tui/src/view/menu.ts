/**
 * The tty2 menu's view model: which items are offered (Factory Reset only on the physical
 * appliance), their labels, and the confirmations of the destructive ones. Pure. (Download logs
 * has its own view model in `logs.ts`.)
 */
import type { Status } from '@clgw/agent/status.js';

export type MenuAction = 'reboot-now' | 'data-reset' | 'factory-reset' | 'ssh' | 'network' | 'logs';

export interface MenuItem {
  action: MenuAction;
  label: string;
}

/** The menu for this status (null: the agent has not answered yet, so nothing platform-bound). */
export function menuItems(status: Status | null): MenuItem[] {
  const items: MenuItem[] = [];
  // While a restart waits for the site's calls to end, the technician's way out comes first.
  const calls = restartCalls(status);
  if (calls !== undefined)
    items.push({ action: 'reboot-now', label: `Reboot now, cutting ${callsText(calls)}` });
  items.push({ action: 'data-reset', label: 'Data Reset' });
  // A virtual appliance is redeployed instead (SPEC §4): the item is not offered at all.
  if (status?.platform === 'physical') items.push({ action: 'factory-reset', label: 'Factory Reset' });
  items.push({
    action: 'ssh',
    label: status?.ssh.enabled ? 'Disable SSH access' : 'Enable SSH access',
  });
  items.push({ action: 'network', label: 'Ethernet configuration and Hostname' });
  items.push({ action: 'logs', label: 'Download logs' });
  return items;
}

/**
 * Why Factory Reset is missing from the menu, under the items (undefined where it is offered):
 * a technician who looks for it must not think the console is broken.
 */
export function factoryResetNote(status: Status | null): string | undefined {
  if (status?.platform === 'physical') return undefined;
  if (status?.platform === 'virtual')
    return 'Factory Reset: not on a virtual appliance - redeploy the OVA instead.';
  if (status?.platform === 'kvm')
    return 'Factory Reset: not on a virtual appliance - deploy the disk image again instead.';
  return 'Factory Reset: offered once the agent answers (physical appliance only).';
}

/** A Yes/No question in a dialog; No is selected first, Escape is No. */
export interface Question {
  title: string;
  /** What Yes does, in plain words (lines; wrapped to the dialog). */
  text: string[];
  question: string;
}

/** Enabling or disabling SSH access, asked before it is done (`until`: the end of the window). */
export function sshQuestion(enable: boolean, until: string): Question {
  return enable
    ? {
        title: 'Enable SSH access',
        text: [
          `SSH access is turned on for 24 hours, until ${until}, unless disabled sooner.`,
          'Support then logs in with a certificate from the vendor; no password works.',
        ],
        question: 'Enable SSH access for 24 hours?',
      }
    : {
        title: 'Disable SSH access',
        text: ['SSH access is turned off now; open SSH sessions of support end at once.'],
        question: 'Disable SSH access now?',
      };
}

export interface Confirmation {
  title: string;
  /** What happens, in plain words (lines). */
  text: string[];
  /** What the technician must type; anything else (or Escape) cancels. */
  word: string;
  /** The agent's API endpoint that does it, and what it is sent. */
  endpoint: '/v1/data-reset' | '/v1/factory-reset' | '/v1/reboot-now';
  body: Record<string, unknown>;
  /** Shown once the agent accepted. */
  done: string;
}

export const CONFIRMATIONS: Record<'data-reset' | 'factory-reset', Confirmation> = {
  'data-reset': {
    title: 'Data Reset',
    text: [
      'Erase the data stored during onboarding: the account link,',
      'PBX settings, tokens and advanced settings.',
      'The installed software, the network settings and the logs are kept.',
    ],
    word: 'RESET',
    endpoint: '/v1/data-reset',
    body: { confirm: true },
    done: 'Data reset done: the onboarding data was erased.',
  },
  'factory-reset': {
    title: 'Factory Reset',
    text: [
      'Restart into the recovery system, which restores the gateway to its',
      'factory state and erases ALL data.',
      'This takes 15 to 20 minutes; do not switch the gateway off.',
    ],
    word: 'FACTORY',
    endpoint: '/v1/factory-reset',
    body: { confirm: true },
    done: 'Factory reset started: the gateway restarts into the recovery system.',
  },
};

/** The calls a restart waits for (null: unknown), or undefined when none waits ("Reboot now"). */
function restartCalls(status: Status | null): number | null | undefined {
  const calls = status?.state === 'waitingForCalls' ? status.calls : null;
  return calls && calls.for !== 'containers' ? calls.active : undefined;
}

const callsText = (calls: number | null) =>
  calls === null ? 'the calls up (how many: unknown)' : `${calls} active call${calls === 1 ? '' : 's'}`;

/**
 * "Reboot now" while a restart waits for calls to end: the word to type is the number of calls it
 * cuts (UNKNOWN when the voice service cannot tell), and the agent refuses it if that number is no
 * longer the one up — nobody cuts calls they were not told of. Undefined when nothing waits.
 */
export function rebootNowConfirmation(status: Status | null): Confirmation | undefined {
  const calls = restartCalls(status);
  if (calls === undefined) return undefined;
  return {
    title: 'Reboot now',
    text: [
      `Restart the gateway now instead of waiting: this cuts ${callsText(calls)}.`,
      ...(status?.phase ? [`(${status.phase}.)`] : []),
    ],
    word: calls === null ? 'UNKNOWN' : String(calls),
    endpoint: '/v1/reboot-now',
    body: { calls },
    done: 'Reboot started: the gateway restarts now.',
  };
}

/** The prompt under a confirmation's text. */
export function confirmPrompt(c: Confirmation): string {
  return `Type ${c.word} and press Enter to confirm; anything else or Escape cancels.`;
}

/** Whether what was typed confirms (exact word, surrounding blanks ignored). */
export function confirms(c: Confirmation, typed: string): boolean {
  return typed.trim() === c.word;
}
