# boot.scr for Debian's qemu-x86_64 U-Boot (no setexpr, no saveenv, no CONFIG_BOOTCOUNT_LIMIT):
# the boot-counting env lives in uboot.env on the FAT partition (the same 16 KiB file fw_setenv edits through
# fw_env.config), read with env import -c and written back with env export -c + fatwrite.
# Semantics as ferry's model: with upgrade_available=1 count the boot; past bootlimit boot the rollback entry
# (ostree's kernel_image2/ramdisk_image2/bootargs2 in uEnv.txt) and set rollback=1 (LmP altbootcmd).
setenv envaddr 0x3000000
setenv uenvaddr 0x3100000
setenv bootsel 1
setenv ramdisk_addr_r 0x10000000
if fatload virtio 0:1 ${envaddr} uboot.env; then env import -c ${envaddr} 0x4000; fi
if test "${upgrade_available}" = "1"; then
  if test "${bootcount}" = "0"; then setenv bootcount 1
  elif test "${bootcount}" = "1"; then setenv bootcount 2
  elif test "${bootcount}" = "2"; then setenv bootcount 3
  elif test "${bootcount}" = "3"; then setenv bootcount 4
  elif test "${bootcount}" = "4"; then setenv bootcount 5
  elif test "${bootcount}" = "5"; then setenv bootcount 6
  else setenv bootcount 9
  fi
  if itest ${bootcount} -gt ${bootlimit}; then setenv bootsel 2; setenv rollback 1; fi
  env export -c -s 0x4000 ${envaddr} bootcount bootlimit upgrade_available bootupgrade_available rollback
  fatwrite virtio 0:1 ${envaddr} uboot.env 0x4000
fi
ext4load virtio 0:2 ${uenvaddr} /loader/uEnv.txt
env import -t ${uenvaddr} ${filesize}
if test "${bootsel}" = "2"; then
  setenv kernel_image ${kernel_image2}; setenv ramdisk_image ${ramdisk_image2}; setenv bootargs ${bootargs2}
fi
echo "FERRY-UBOOT: upgrade_available=${upgrade_available} bootcount=${bootcount} bootlimit=${bootlimit} bootsel=${bootsel}"
ext4load virtio 0:2 ${kernel_addr_r} ${kernel_image}
ext4load virtio 0:2 ${ramdisk_addr_r} ${ramdisk_image}
zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}
