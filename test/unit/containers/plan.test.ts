import { describe, expect, it } from 'vitest';
import { type ContainerInfo, LABELS } from '../../../agent/src/containers/engine-port.js';
import {
  type Observed,
  type PlanInput,
  planService,
  type ServiceTarget,
  type Step,
  specFor,
  versionAnswerMatches,
} from '../../../agent/src/containers/plan.js';

const archive = { path: 'containers/tunnel-1.1.tar', size: 1000, sha256: 'a'.repeat(64) };
const target: ServiceTarget = {
  name: 'tunnel',
  version: '1.1',
  image: 'localhost/tunnel-standin:1.1',
  archive,
};
const defaults = { port: 8081, dataDir: '/var/clgw/containers/tunnel' };

function container(
  name: string,
  version: string,
  running: boolean,
  extra: Partial<ContainerInfo> = {},
): ContainerInfo {
  const image = `localhost/tunnel-standin:${version}`;
  const labels = { [LABELS.service]: 'tunnel', [LABELS.version]: version, [LABELS.healthPort]: '9001' };
  return {
    id: `${name}-id`,
    name,
    image,
    imageId: `sha256:${version}`,
    state: running ? 'running' : 'exited',
    running,
    labels,
    spec: {
      name,
      image,
      env: ['PORT=9001', 'SITE=hq'],
      labels,
      volumes: [{ host: '/data/tunnel', container: '/data', readOnly: false }],
      restartPolicy: 'unless-stopped',
      memoryBytes: 1,
    },
    ...extra,
  };
}

const oldRunning = container('clgw-tunnel', '1.0', true);
const oldStopped = container('clgw-tunnel', '1.0', false);
const newRunning = container('clgw-tunnel', '1.1', true);
const newStopped = container('clgw-tunnel', '1.1', false);
const nextCreated = container('clgw-tunnel-next', '1.1', false);
const nextRunning = container('clgw-tunnel-next', '1.1', true);
const nextStale = container('clgw-tunnel-next', '1.05', false);

function plan(observed: Observed, over: Partial<PlanInput> = {}) {
  return planService({
    service: 'tunnel',
    observed,
    target,
    intent: 'upgrade',
    profile: 'small',
    defaults,
    rejected: [],
    ...over,
  });
}

/** Steps in short form: `stop clgw-tunnel`, `create clgw-tunnel-next`, `fetch`, … */
function short(steps: Step[]): string[] {
  return steps.map((s) => {
    switch (s.kind) {
      case 'fetch':
      case 'load':
        return s.kind;
      case 'create':
        return `create ${s.spec.name}`;
      case 'rename':
        return `rename ${s.from} ${s.to}`;
      case 'waitHealthy':
        return `wait ${s.name}:${s.port}`;
      default:
        return `${s.kind} ${s.name}`;
    }
  });
}

const UPGRADE_TAIL = [
  'wait clgw-tunnel-next:9001',
  'remove clgw-tunnel',
  'rename clgw-tunnel-next clgw-tunnel',
];

const table: [string, Observed, Partial<PlanInput>, string, string[]][] = [
  ['up to date and running', { main: newRunning, imagePresent: true }, {}, 'none', []],
  [
    'up to date, stopped',
    { main: newStopped, imagePresent: true },
    {},
    'start',
    ['start clgw-tunnel', 'wait clgw-tunnel:9001'],
  ],
  [
    'first install',
    { imagePresent: false },
    {},
    'install',
    [
      'fetch',
      'load',
      'create clgw-tunnel-next',
      'start clgw-tunnel-next',
      'wait clgw-tunnel-next:8081',
      'rename clgw-tunnel-next clgw-tunnel',
    ],
  ],
  [
    'upgrade, image not loaded',
    { main: oldRunning, imagePresent: false },
    {},
    'upgrade',
    [
      'fetch',
      'load',
      'create clgw-tunnel-next',
      'stop clgw-tunnel',
      'start clgw-tunnel-next',
      ...UPGRADE_TAIL,
    ],
  ],
  [
    'upgrade, image already loaded (cut after the load)',
    { main: oldRunning, imagePresent: true },
    {},
    'upgrade',
    ['create clgw-tunnel-next', 'stop clgw-tunnel', 'start clgw-tunnel-next', ...UPGRADE_TAIL],
  ],
  [
    'cut after create',
    { main: oldRunning, next: nextCreated, imagePresent: true },
    {},
    'resume',
    ['stop clgw-tunnel', 'start clgw-tunnel-next', ...UPGRADE_TAIL],
  ],
  [
    'cut after stopping the old',
    { main: oldStopped, next: nextCreated, imagePresent: true },
    {},
    'resume',
    ['start clgw-tunnel-next', ...UPGRADE_TAIL],
  ],
  [
    'cut after starting the new',
    { main: oldStopped, next: nextRunning, imagePresent: true },
    {},
    'resume',
    UPGRADE_TAIL,
  ],
  [
    'cut after removing the old',
    { next: nextRunning, imagePresent: true },
    {},
    'resume',
    ['wait clgw-tunnel-next:9001', 'rename clgw-tunnel-next clgw-tunnel'],
  ],
  [
    'a stale -next from an older attempt (name collision) is removed first',
    { main: oldRunning, next: nextStale, imagePresent: true },
    {},
    'upgrade',
    [
      'remove clgw-tunnel-next',
      'create clgw-tunnel-next',
      'stop clgw-tunnel',
      'start clgw-tunnel-next',
      ...UPGRADE_TAIL,
    ],
  ],
  [
    'leftover -next beside the target',
    { main: newRunning, next: nextStale, imagePresent: true },
    {},
    'start',
    ['remove clgw-tunnel-next'],
  ],
  [
    'rollback: drop the new, start the old',
    { main: oldStopped, next: nextRunning, imagePresent: true },
    { intent: 'rollback' },
    'rollback',
    ['stop clgw-tunnel-next', 'remove clgw-tunnel-next', 'start clgw-tunnel', 'wait clgw-tunnel:9001'],
  ],
  [
    'rollback cut after the new was removed',
    { main: oldStopped, imagePresent: true },
    { intent: 'rollback' },
    'rollback',
    ['start clgw-tunnel', 'wait clgw-tunnel:9001'],
  ],
  [
    'rollback of a first install',
    { next: nextRunning, imagePresent: true },
    { intent: 'rollback' },
    'rollback',
    ['stop clgw-tunnel-next', 'remove clgw-tunnel-next'],
  ],
  ['a rejected version is held', { main: oldRunning, imagePresent: true }, { rejected: ['1.1'] }, 'held', []],
  [
    'held, the old restarted',
    { main: oldStopped, imagePresent: true },
    { rejected: ['1.1'] },
    'held',
    ['start clgw-tunnel'],
  ],
  [
    'a rejected version is tried again when forced',
    { main: oldRunning, imagePresent: true },
    { rejected: ['1.1'], force: true },
    'upgrade',
    ['create clgw-tunnel-next', 'stop clgw-tunnel', 'start clgw-tunnel-next', ...UPGRADE_TAIL],
  ],
  [
    'no longer listed for the platform: removed',
    { main: oldRunning, next: nextStale, imagePresent: false },
    { target: undefined },
    'remove',
    ['remove clgw-tunnel-next', 'stop clgw-tunnel', 'remove clgw-tunnel'],
  ],
  ['not listed and not there', { imagePresent: false }, { target: undefined }, 'none', []],
];

describe('planService: observed state → steps', () => {
  it.each(table)('%s', (_name, observed, over, action, steps) => {
    const p = plan(observed, over);
    expect(short(p.steps)).toEqual(steps);
    expect(p.action).toBe(action);
  });

  it('every upgrade path converges: replanning after each step leads to the same end', () => {
    // Apply each step to a model of the engine and plan again after every step: the plan of the
    // next state must be the rest of the first plan (nothing repeated, nothing skipped). A fetch
    // and a health wait leave no trace in the engine (after a cut right behind one it runs again:
    // the archive comes from the cache, health is checked anew), so each goes with the next step.
    let observed: Observed = { main: oldRunning, imagePresent: false };
    const noWait = (l: string[]) => l.filter((x) => !x.startsWith('wait '));
    const first = noWait(short(plan(observed).steps));
    let done = 0;
    for (let steps = plan(observed).steps; steps.length > 0; steps = plan(observed).steps) {
      let take = 1;
      while (['fetch', 'waitHealthy'].includes(steps[take - 1]!.kind)) take++;
      for (const step of steps.slice(0, take)) observed = apply(observed, step);
      done += noWait(short(steps.slice(0, take))).length;
      // A health wait may come first again: after a cut the new container is checked anew.
      expect(noWait(short(plan(observed).steps))).toEqual(first.slice(done));
    }
    expect(done).toBe(first.length);
    expect(observed.main).toMatchObject({
      name: 'clgw-tunnel',
      running: true,
      labels: { [LABELS.version]: '1.1' },
    });
    expect(observed.next).toBeUndefined();
  });
});

/** What a step does to the engine, in the planner's terms (healthy always). */
function apply(o: Observed, s: Step): Observed {
  const set = (name: string, c: ContainerInfo | undefined): Observed =>
    name === 'clgw-tunnel' ? { ...o, main: c } : { ...o, next: c };
  const get = (name: string) => (name === 'clgw-tunnel' ? o.main : o.next);
  switch (s.kind) {
    case 'fetch':
      return o;
    case 'load':
      return { ...o, imagePresent: true };
    case 'create':
      return set(s.spec.name, {
        ...container(s.spec.name, s.spec.labels[LABELS.version]!, false),
        labels: s.spec.labels,
        spec: s.spec,
      });
    case 'start':
      return set(s.name, { ...get(s.name)!, running: true });
    case 'stop':
      return set(s.name, { ...get(s.name)!, running: false });
    case 'remove':
      return set(s.name, undefined);
    case 'waitHealthy':
      return o;
    case 'rename': {
      const c = get(s.from)!;
      return { ...o, next: undefined, main: { ...c, name: s.to } };
    }
  }
}

describe('specFor', () => {
  it('keeps the old configuration and adds the profile limits', () => {
    const spec = specFor('tunnel', 'clgw-tunnel-next', target, oldRunning, 'large', defaults);
    expect(spec).toEqual({
      name: 'clgw-tunnel-next',
      image: 'localhost/tunnel-standin:1.1',
      env: ['PORT=9001', 'SITE=hq'],
      labels: { [LABELS.service]: 'tunnel', [LABELS.version]: '1.1', [LABELS.healthPort]: '9001' },
      volumes: [{ host: '/data/tunnel', container: '/data', readOnly: false }],
      restartPolicy: 'unless-stopped',
      memoryBytes: 512 * 1024 * 1024,
    });
  });

  it('first install: the service defaults; FreeSWITCH gets its memory and RTP range', () => {
    const fs = specFor(
      'freeswitch',
      'clgw-freeswitch-next',
      { ...target, name: 'freeswitch' },
      undefined,
      'small',
      {
        port: 8083,
        dataDir: '/var/clgw/containers/freeswitch',
      },
    );
    expect(fs.env).toEqual(['PORT=8083', 'RTP_PORTS=65336-65534']);
    expect(fs.memoryBytes).toBe(512 * 1024 * 1024);
    expect(fs.restartPolicy).toBe('always');
    expect(fs.volumes).toEqual([
      { host: '/var/clgw/containers/freeswitch', container: '/data', readOnly: false },
    ]);
  });
});

describe('images by the ID compat.yaml signs', () => {
  const signed = { ...target, imageId: 'sha256:1.1' };
  it('a container of the signed image ID is the target, with or without sha256:', () => {
    expect(plan({ main: newRunning, imagePresent: true }, { target: signed }).action).toBe('none');
    const bare = container('clgw-tunnel', '1.1', true, { imageId: '1.1' });
    expect(plan({ main: bare, imagePresent: true }, { target: signed }).action).toBe('none');
  });

  it('a container that bears the tag and version of another image is replaced', () => {
    const other = container('clgw-tunnel', '1.1', true, { imageId: 'sha256:other' });
    const p = plan({ main: other, imagePresent: false }, { target: signed });
    expect(p.action).toBe('upgrade');
    expect(short(p.steps).slice(0, 2)).toEqual(['fetch', 'load']);
    expect(p.steps[1]).toMatchObject({ kind: 'load', imageId: 'sha256:1.1' });
  });
});

describe('the version a service answers', () => {
  it.each([
    ['micloud 1.1.0', 'micloud', '1.1.0', true],
    ['1.1.0\n', 'micloud', '1.1.0', true],
    ['tunnel 1.1.0', 'micloud', '1.1.0', false],
    ['micloud 11.1.0', 'micloud', '1.1.0', false],
    ['micloud 1.1.0-rc1', 'micloud', '1.1.0', false],
    ['anything', 'micloud', '', true],
  ] as const)('%j for %s %s: %s', (body, service, version, ok) => {
    expect(versionAnswerMatches(body, service, version)).toBe(ok);
  });
});
