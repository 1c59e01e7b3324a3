# ferry's boot counting for U-Boot: boot.scr on the FAT partition is `mkimage -A x86 -T script -d boot.cmd boot.scr`.
#
# The variables and their meaning are ferry's (README, "Boot counting"; src/device/bootloader-env.ts):
#   upgrade_available=1  a new deployment is on trial: count every boot in bootcount
#   bootcount > bootlimit  the trial failed: boot OSTree's second entry (the previous deployment), set rollback=1
# ferry arms the trial (upgrade_available=1 bootcount=0) and ends it (upgrade_available=0 bootcount=0 rollback=0)
# with fw_setenv; this script only counts and falls back.
#
# The env is REDUNDANT, two files on the FAT partition (p1), in libubootenv's format (mkenvimage -r -s 0x4000):
#   offset 0: crc32 of the data (4 bytes, little endian)   offset 4: flags byte   offset 5: data ("name=value\0"...)
# The device's /etc/fw_env.config names both: "/boot/efi/uboot.env 0x0 0x4000" and
# "/boot/efi/uboot-redund.env 0x0 0x4000". libubootenv (fw_printenv/fw_setenv) reads both, uses the valid copy
# (the one whose crc matches), or the one with the newer flags byte when both are valid, and writes a change ONLY
# into the other copy with the flags byte one higher: a power cut during a write tears at most the copy that was not
# in use, and the other one still holds the last complete env. This script reads and writes the same way.
#
# Debian's qemu-x86 U-Boot has no setexpr (no arithmetic) and no saveenv: addresses are constants, the counter is
# counted by table, and the env files are read with fatload and written with fatwrite.

# Memory: copy 0 (uboot.env) and copy 1 (uboot-redund.env) as read, their flags bytes, a 4-byte scratch for a crc,
# and the image being written.
setenv ferry_copy0 0x3000000
setenv ferry_copy1 0x3010000
setenv ferry_flags0 0x3020000
setenv ferry_flags1 0x3020001
setenv ferry_crc 0x3020010
setenv ferry_out 0x3030000
# The variables the env files hold; U-Boot writes back exactly these.
setenv ferry_env_vars "bootlimit bootcount upgrade_available bootupgrade_available rollback"
setenv ramdisk_addr_r 0x10000000
setenv bootsel 1

# 1. Read both copies. `env import -c` checks a crc that sits right before the data, but libubootenv's flags byte
#    sits between them: keep the flags byte aside, then move the crc one byte up, next to the data, and import the
#    0x3fff bytes from there. A copy that is missing or whose crc fails imports nothing.
setenv ferry_valid0 0
setenv ferry_valid1 0
if fatload virtio 0:1 ${ferry_copy0} uboot.env 0x4000; then
  cp.b 0x3000004 ${ferry_flags0} 1
  cp.b 0x3000000 ${ferry_crc} 4
  cp.b ${ferry_crc} 0x3000001 4
  if env import -c 0x3000001 0x3fff; then setenv ferry_valid0 1; fi
fi
if fatload virtio 0:1 ${ferry_copy1} uboot-redund.env 0x4000; then
  cp.b 0x3010004 ${ferry_flags1} 1
  cp.b 0x3010000 ${ferry_crc} 4
  cp.b ${ferry_crc} 0x3010001 4
  if env import -c 0x3010001 0x3fff; then setenv ferry_valid1 1; fi
fi

# 2. The current copy, as libubootenv chooses it: the only valid one; of two valid ones the one with the higher
#    flags byte (copy 0 when equal), except that the flags wrap: 0 is newer than 255.
setenv ferry_current none
if test ${ferry_valid0} = 1 && test ${ferry_valid1} = 1; then
  setenv ferry_current 0
  if itest.b *${ferry_flags1} > *${ferry_flags0}; then setenv ferry_current 1; fi
  if itest.b *${ferry_flags0} == 0xff && itest.b *${ferry_flags1} == 0; then setenv ferry_current 1; fi
  if itest.b *${ferry_flags1} == 0xff && itest.b *${ferry_flags0} == 0; then setenv ferry_current 0; fi
elif test ${ferry_valid0} = 1; then
  setenv ferry_current 0
elif test ${ferry_valid1} = 1; then
  setenv ferry_current 1
fi

# Both copies were imported above; start over from the current one alone, so that a variable the current copy lacks
# does not come from the other.
setenv bootlimit
setenv bootcount
setenv upgrade_available
setenv bootupgrade_available
setenv rollback
if test ${ferry_current} = 0; then
  env import -c 0x3000001 0x3fff
  setenv ferry_current_flags ${ferry_flags0}
  setenv ferry_write_file uboot-redund.env
elif test ${ferry_current} = 1; then
  env import -c 0x3010001 0x3fff
  setenv ferry_current_flags ${ferry_flags1}
  setenv ferry_write_file uboot.env
else
  echo "FERRY-BOOT: no valid copy of the boot env (uboot.env, uboot-redund.env): booting the default entry, not counting"
fi

# 3. Count the boot of a trial (as ferry's model does, src/sim/bootloader-model.ts). No arithmetic: a table, which
#    stops at 9 (any bootlimit up to 8 works).
if test "${ferry_current}" != none && test "${upgrade_available}" = 1; then
  if   test "${bootcount}" = 0; then setenv bootcount 1
  elif test "${bootcount}" = 1; then setenv bootcount 2
  elif test "${bootcount}" = 2; then setenv bootcount 3
  elif test "${bootcount}" = 3; then setenv bootcount 4
  elif test "${bootcount}" = 4; then setenv bootcount 5
  elif test "${bootcount}" = 5; then setenv bootcount 6
  elif test "${bootcount}" = 6; then setenv bootcount 7
  elif test "${bootcount}" = 7; then setenv bootcount 8
  else setenv bootcount 9
  fi
  # Past the limit: boot the rollback entry and tell ferry it happened (LmP's altbootcmd sets rollback=1 too).
  if test ${bootcount} -gt ${bootlimit}; then
    setenv bootsel 2
    setenv rollback 1
  fi

  # 4. Write the env back into the copy NOT in use, with a newer flags byte, as libubootenv does: a power cut during
  #    the fatwrite tears that copy only; the current copy still holds the env of the last complete write, and the
  #    next boot (or fw_printenv) uses it. `env export -c` writes crc + data: export it one byte up, move the crc down
  #    to offset 0 and put the flags byte at offset 4.
  #    The flags byte: without arithmetic U-Boot cannot add one, so it writes a value libubootenv reads as newer
  #    than the current copy's: 1 after 0, 0 after 255 (the wrap), 255 after anything else. fw_setenv then adds one
  #    to whatever it finds, as usual.
  env export -c -s 0x3fff 0x3030001 ${ferry_env_vars}
  cp.b 0x3030001 ${ferry_crc} 4
  cp.b ${ferry_crc} ${ferry_out} 4
  setenv ferry_new_flags 0xff
  if itest.b *${ferry_current_flags} == 0; then setenv ferry_new_flags 1; fi
  if itest.b *${ferry_current_flags} == 0xff; then setenv ferry_new_flags 0; fi
  mw.b 0x3030004 ${ferry_new_flags} 1
  fatwrite virtio 0:1 ${ferry_out} ${ferry_write_file} 0x4000
fi

# 5. Boot. OSTree (sysroot.bootloader=uboot) writes /boot/loader/uEnv.txt: the default deployment in kernel_image,
#    ramdisk_image, bootargs; the previous one in kernel_image2, ramdisk_image2, bootargs2.
ext4load virtio 0:2 0x3100000 /loader/uEnv.txt
env import -t 0x3100000 ${filesize}
if test "${bootsel}" = 2; then
  setenv kernel_image ${kernel_image2}
  setenv ramdisk_image ${ramdisk_image2}
  setenv bootargs ${bootargs2}
fi
echo "FERRY-BOOT: env copy=${ferry_current} upgrade_available=${upgrade_available} bootcount=${bootcount} bootlimit=${bootlimit} rollback=${rollback} entry=${bootsel}"
ext4load virtio 0:2 ${kernel_addr_r} ${kernel_image}
ext4load virtio 0:2 ${ramdisk_addr_r} ${ramdisk_image}
zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}
