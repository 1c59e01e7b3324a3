import assert from 'node:assert/strict';
import { test } from 'node:test';
import { driveArgument, USB_STICK_THROTTLE } from './support/vm.js';

/**
 * The stick of `npm run bench:media` is as slow as a real USB stick only through QEMU's throttling options: the
 * profile and the option names QEMU takes are pinned here, so that neither changes without this test saying so.
 */
test('a throttled stick is a virtio drive at 20 MB/s write, 40 MB/s read and 300 write requests a second', () => {
  assert.deepEqual(USB_STICK_THROTTLE, {
    writeBytesPerSecond: 20_000_000,
    readBytesPerSecond: 40_000_000,
    writeRequestsPerSecond: 300,
  });
  assert.equal(
    driveArgument({ image: '/var/tmp/stick.img', throttle: USB_STICK_THROTTLE }),
    'file=/var/tmp/stick.img,format=raw,if=virtio,throttling.bps-write=20000000,throttling.bps-read=40000000,throttling.iops-write=300',
  );
});

test('a stick given as a path is an unthrottled virtio drive, as before', () => {
  assert.equal(driveArgument('/var/tmp/data.ext4'), 'file=/var/tmp/data.ext4,format=raw,if=virtio');
});
