// The test kit lives in libs/devstack (@votestream/devstack); import it from there. This re-export remains only
// for stream/test, which moves onto the kit with the stream runtime's refactor.
export { eventually, repoRoot, stack, stackDir, uniqueId } from '@votestream/devstack';
