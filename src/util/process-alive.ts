/** Whether a process with this pid exists (one we may not signal exists too): who owns a lock or a scratch dir. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
