// The RDMA suite runs inside the soft-RoCE VM only (scripts/rxe-vm.sh → npm run test:rdma);
// the root config excludes this folder from host runs.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/rdma/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 300_000,  // qemu TCG: everything is ~20x slower than on metal
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
