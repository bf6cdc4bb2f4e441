/**
 * systeminformation's memory module on its own (its `lib/index.js` loads all twenty modules;
 * the package has no `exports` map, so the file is reachable): typed as the package types it.
 */
declare module 'systeminformation/lib/memory.js' {
  export { mem } from 'systeminformation';
}
