/**
 * The one table of exit codes. Shell scripts and factory lines branch on these numbers, so each meaning lives here
 * and nowhere else: commands return an Outcome name, and only the entry point turns it into a number.
 *
 * The numbers follow aktualizr-lite wherever it has one (shared/reference.md §3).
 */

export interface OutcomeInfo {
  readonly exitCode: number;
  /** success: done; instruction: done so far, the operator acts next (reboot…); failure: refused or failed. */
  readonly kind: 'success' | 'instruction' | 'failure';
  /** Which commands can end with it. */
  readonly commands: readonly string[];
  readonly meaning: string;
  /** What the operator (or script) does next. */
  readonly next: string;
  /**
   * The code today's aktualizr-lite (aklite-offline) answers for this outcome, where it differs from the documented
   * table: a device whose configuration sets `[ferry] exit_codes = "aktualizr-lite"` answers this one instead.
   */
  readonly aktualizrLite?: number;
}

/**
 * The two tables a device can answer with: ferry's documented one (the default, reference §3) and today's
 * aktualizr-lite codes, for scripts written against a current aklite-offline.
 */
export const EXIT_CODE_TABLES = ['ferry', 'aktualizr-lite'] as const;
export type ExitCodeTable = (typeof EXIT_CODE_TABLES)[number];

const DEVICE = ['install', 'run', 'status', 'check', 'current'] as const;

/**
 * The workstation commands whose paths are checked with codes of their own (62-65); the device commands answer a
 * bad bundle path with 13 and a bad configuration path with 3, the codes aktualizr-lite scripts already handle.
 */
const PATH_COMMANDS = [
  'repo init',
  'target add',
  'app add',
  'export',
  'verify',
  'bundle sign',
  'bundle pack',
  'keys rotate',
  'keys add-offline',
  'sim create',
  'sim reboot',
  'sim rootfs',
  'sim image',
  'device register',
  'ca init',
  'ca fleet-key',
  'device certify',
  'device revoke',
] as const;

export const OUTCOMES = {
  // ── success and instructions ────────────────────────────────────────────────────────────────────────────────────
  OK: { exitCode: 0, kind: 'success', commands: ['*'], meaning: 'done: nothing (more) to do', next: 'nothing' },
  ALREADY_INSTALLED: {
    exitCode: 0,
    kind: 'success',
    commands: ['install'],
    meaning: 'nothing installed: the device already runs this target (apps in sync)',
    next: 'nothing',
  },
  CHECK_UP_TO_DATE: {
    exitCode: 0,
    kind: 'success',
    commands: ['check'],
    meaning:
      'the stick verifies; the device already runs its target for this device, apps in sync: install would change nothing',
    next: 'nothing',
  },
  CHECK_UPDATE_AVAILABLE: {
    exitCode: 36,
    kind: 'instruction',
    commands: ['check'],
    meaning: 'the stick verifies and holds a target this device does not run: install would stage it',
    next: 'install from the stick',
    aktualizrLite: 16,
  },
  CHECK_APPS_TO_SYNC: {
    exitCode: 37,
    kind: 'instruction',
    commands: ['check'],
    meaning:
      "the stick verifies; the device runs its target, but the target's apps are not in sync: install would sync them",
    next: 'install from the stick',
    aktualizrLite: 17,
  },
  NOTHING_PENDING: {
    exitCode: 0,
    kind: 'success',
    commands: ['run'],
    meaning: 'nothing was pending',
    next: 'nothing',
    aktualizrLite: 40,
  },
  APPS_RESTORED: {
    exitCode: 0,
    kind: 'success',
    commands: ['run'],
    meaning: "nothing was pending; the current target's apps that were not running were started again",
    next: 'nothing',
    aktualizrLite: 40,
  },
  UPDATE_SUCCEEDED: {
    exitCode: 0,
    kind: 'success',
    commands: ['run'],
    meaning: 'update succeeded: booted on the new rootfs',
    next: 'nothing',
  },
  BOOT_FIRMWARE_REBOOT_FIRST: {
    exitCode: 90,
    kind: 'instruction',
    commands: ['install', 'check'],
    meaning: 'nothing installed: a previous boot-firmware update needs a reboot to finish',
    next: 'reboot, then install again',
  },
  UPDATE_SUCCEEDED_BOOT_FIRMWARE: {
    exitCode: 90,
    kind: 'instruction',
    commands: ['run'],
    meaning: 'update succeeded, and the bootloader was updated too',
    next: 'an optional reboot confirms the boot firmware',
    aktualizrLite: 5,
  },
  ROLLED_BACK: {
    exitCode: 99,
    kind: 'failure',
    commands: ['run'],
    meaning: 'update failed: the new rootfs did not boot; the bootloader rolled back; the target is recorded as failed',
    next: 'nothing: the device runs the previous version',
  },
  REBOOT_REQUIRED: {
    exitCode: 100,
    kind: 'instruction',
    commands: ['install'],
    meaning: 'installed; a reboot is required',
    next: 'reboot, then run',
  },
  REBOOT_NOT_DONE_YET: {
    exitCode: 100,
    kind: 'instruction',
    commands: ['run'],
    meaning: 'the installed update waits for a reboot; nothing was changed',
    next: 'reboot, then run',
  },

  TESTING: {
    exitCode: 105,
    kind: 'instruction',
    commands: ['run'],
    meaning: 'the new apps are up and in their testing window; the update is not committed yet (run --no-wait)',
    next: 'run again after the testing window to commit',
  },
  RESTART_ENGINE_REQUIRED: {
    exitCode: 101,
    kind: 'instruction',
    commands: ['install'],
    meaning: 'installed; only apps changed; restart the container engine',
    next: 'systemctl restart docker, then run',
    aktualizrLite: 10,
  },
  APPS_SYNCED: {
    exitCode: 101,
    kind: 'instruction',
    commands: ['install'],
    meaning:
      'the device already runs this target, but its apps were not in sync (or --force): the app store holds them now; run starts them',
    next: 'systemctl restart docker, then run',
    aktualizrLite: 10,
  },
  APPS_ROLLED_BACK: {
    exitCode: 99,
    kind: 'failure',
    commands: ['run'],
    meaning:
      "update failed: the new apps did not start, keep running or reach their status goals, or a health check failed; the previous target's apps run again",
    next: 'nothing: the device runs the previous version',
  },
  APPS_FAILED_REBOOT_TO_ROLLBACK: {
    exitCode: 100,
    kind: 'failure',
    commands: ['run'],
    meaning:
      'update failed: booted on the new rootfs but the apps failed (or a status goal was not reached, or a health check failed); rolling back; reboot, then run again',
    next: 'reboot, then run',
  },
  APPS_ROLLBACK_FAILED: {
    exitCode: 110,
    kind: 'failure',
    commands: ['run'],
    meaning: "update failed: rolled back, but the previous version's apps are unknown and could not be started",
    next: 'install a known-good bundle',
    aktualizrLite: 120,
  },
  APPS_FAILED_NO_ROLLBACK: {
    exitCode: 120,
    kind: 'failure',
    commands: ['run', 'sim create'],
    meaning: 'update failed: the apps failed and there is no known version to roll back to',
    next: 'install a known-good bundle',
  },

  // ── refusals before anything is written (WONTGO) ────────────────────────────────────────────────────────────────
  INTERNAL_ERROR: {
    exitCode: 1,
    kind: 'failure',
    commands: ['*'],
    meaning: 'unexpected error (a bug, or a tool that failed in an unexpected way)',
    next: 'read the message; report it',
  },
  USAGE: { exitCode: 2, kind: 'failure', commands: ['*'], meaning: 'bad command line', next: 'see --help' },
  CONFIG_INVALID: {
    exitCode: 3,
    kind: 'failure',
    commands: [...DEVICE, 'device provision', 'sim reboot'],
    meaning: 'the device configuration is missing or invalid',
    next: 'fix the sota.toml / conf.d files',
    aktualizrLite: 1,
  },
  DEVICE_STATE_UNREADABLE: {
    exitCode: 4,
    kind: 'failure',
    commands: [...DEVICE, 'device provision'],
    meaning: 'the device state cannot be read (booted deployment, bootloader env or trusted metadata)',
    next: 'check the sysroot, the cmdline file and the bootloader env',
  },
  ENGINE_UNAVAILABLE: {
    exitCode: 5,
    kind: 'failure',
    commands: ['run', 'sim create'],
    meaning: 'the container engine cannot be reached',
    next: 'start the container engine (systemctl start docker), then run again',
    aktualizrLite: 1,
  },
  NO_MATCHING_TARGET: {
    exitCode: 6,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: "no target in the bundle matches the device's tags",
    next: 'use a bundle exported for this tag',
  },
  WRONG_HARDWARE_ID: {
    exitCode: 7,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: "no target in the bundle is for this device's hardware id",
    next: 'use a bundle exported for this hardware',
    aktualizrLite: 6,
  },
  CONTENT_MISSING: {
    exitCode: 8,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: "the target's content (its OSTree commit or objects, an app or a blob) is missing from the bundle",
    next: 'export the bundle again',
  },
  SECURITY_ERROR: {
    exitCode: 11,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'bad signature or security check (signature, threshold, metadata versions that do not fit together)',
    next: 'do not use this bundle; export a new one',
  },
  METADATA_EXPIRED: {
    exitCode: 12,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'the bundle metadata has expired',
    next: 'export a fresh bundle',
  },
  METADATA_OLDER_THAN_TRUSTED: {
    exitCode: 18,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning:
      'the bundle is older than the metadata this device already trusts (an older stick, or one replayed): TUF refuses to go back',
    next: 'export a fresh bundle',
    aktualizrLite: 11,
  },
  BUNDLE_UNREADABLE: {
    exitCode: 13,
    kind: 'failure',
    commands: ['install', 'check', 'show', 'verify', 'bundle sign', 'bundle pack', 'export'],
    meaning: 'the bundle cannot be read (no such directory, or not a bundle)',
    next: 'check --src-dir and the media',
  },
  METADATA_NOT_FOUND: {
    exitCode: 14,
    kind: 'failure',
    commands: ['install', 'check', 'show', 'verify', 'bundle sign'],
    meaning: 'a metadata file is missing from the bundle',
    next: 'export the bundle again',
  },
  NOT_A_RECIPIENT: {
    exitCode: 38,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning:
      'the bundle is encrypted, and none of the keys this device holds (its own decryption key, the fleet keys it was given), or the key given to verify, is one it was encrypted to; nothing was decrypted or written',
    next: "export the bundle again with --encrypt-to naming this device's decryption certificate (ferry device certify of <storage>/ferry/decryption.csr) or a fleet certificate whose key it holds",
    aktualizrLite: 13,
  },
  ENCRYPTED_PAYLOAD_MISMATCH: {
    exitCode: 39,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning:
      "an encrypted bundle's payload or key envelope does not match the length and SHA-256 its signed bundle-targets.json names, or the decrypted payload fails its AES-GCM authentication tag: the stick was changed after export; refused before anything was decrypted, or with everything decrypted removed",
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 13,
  },
  BUNDLE_ARCHIVE_INVALID: {
    exitCode: 17,
    kind: 'failure',
    commands: ['install', 'check', 'show', 'verify', 'bundle sign', 'bundle pack'],
    meaning:
      'a single-file bundle is damaged or hostile (path traversal, links, duplicates, special files, a zip bomb, truncation)',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 13,
  },
  BUNDLE_METADATA_INVALID: {
    exitCode: 15,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'bundle-targets.json does not fit this device (bundle type or tag)',
    next: 'use a bundle exported for this tag and type (ci/prod)',
  },
  METADATA_MALFORMED: {
    exitCode: 16,
    kind: 'failure',
    commands: ['install', 'check', 'show', 'verify', 'bundle sign'],
    meaning: 'a metadata file is malformed (not JSON, missing fields, bad expiry date)',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 11,
  },
  TARGET_NOT_IN_BUNDLE: {
    exitCode: 20,
    kind: 'failure',
    commands: ['install'],
    meaning: 'the target named with --target is not in the bundle',
    next: 'check the name with the bundle',
  },
  INSTALL_PENDING: {
    exitCode: 30,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: 'another install is pending: it waits for a reboot and run',
    next: 'run (it completes the pending update, or says 100 if the reboot is still to come), then install again',
  },
  LOCKED: {
    exitCode: 31,
    kind: 'failure',
    commands: ['install', 'run', 'device provision'],
    meaning: 'another ferry install or run is running on this device',
    next: 'wait for it (the message names its pid), then try again',
  },
  INSTALL_INTERRUPTED: {
    exitCode: 32,
    kind: 'failure',
    commands: ['run'],
    meaning:
      'an install stopped (power cut, kill) before it finished; what it had begun was undone, and the device runs what it ran before',
    next: 'install again',
  },
  APPS_RESTORE_FAILED: {
    exitCode: 33,
    kind: 'failure',
    commands: ['run'],
    meaning: "nothing was pending, but the current target's apps were not running and did not start again",
    next: 'read the message; install the target again (it syncs its apps), or a known-good bundle',
  },
  STAGING_FAILED: {
    exitCode: 50,
    kind: 'failure',
    commands: ['install'],
    meaning: 'staging the update failed; the device still runs and boots the current version',
    next: 'read the message; install again',
  },
  STAGING_UNDO_INCOMPLETE: {
    exitCode: 34,
    kind: 'failure',
    commands: ['install'],
    meaning:
      'staging the update failed, and undoing what it had written to the boot state failed too; the update stays pending so that run finishes the undo',
    next: 'read the message; fix its cause, then run (it finishes the undo), then install again',
  },
  FACTORY_LOCKED: {
    exitCode: 35,
    kind: 'failure',
    commands: [
      'target add',
      'app add',
      'export',
      'keys rotate',
      'keys add-offline',
      'ca init',
      'ca fleet-key',
      'device certify',
      'device revoke',
    ],
    meaning:
      'another ferry command is changing this factory repository (its versions, keys or targets); nothing was changed',
    next: 'wait for it (the message names its pid and command), then try again',
  },
  CONTENT_VERIFICATION_FAILED: {
    exitCode: 70,
    kind: 'failure',
    commands: ['install', 'verify'],
    meaning: 'the content pulled from the bundle does not match the signed target',
    next: 'do not use this bundle; export a new one',
  },
  STATIC_DELTA_MISMATCH: {
    exitCode: 66,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning:
      'the rootfs static delta file (rootfs/<commit>.delta) does not match the length and SHA-256 its signed bundle-targets.json names: the stick was changed after export; refused before anything was written',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 13,
  },
  STATIC_DELTA_APPLY_FAILED: {
    exitCode: 67,
    kind: 'failure',
    commands: ['install', 'verify'],
    meaning:
      "`ostree static-delta apply-offline` refused or failed on the rootfs static delta, or the commit it wrote is not the signed target's; what it wrote was left unreferenced and nothing was deployed",
    next: 'do not use this bundle; export a new one (verify it with `ferry verify`)',
  },
  NO_SPACE: {
    exitCode: 60,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: 'not enough free space for the update; nothing was written',
    next: 'free space on the device, then install again',
  },
  APP_MANIFEST_MISMATCH: {
    exitCode: 71,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'an app manifest on the bundle does not match the digest its signed target pins',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 70,
  },
  COMPOSE_ARCHIVE_MISMATCH: {
    exitCode: 72,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: "an app's compose archive does not match its manifest",
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 70,
  },
  IMAGE_MANIFEST_MISMATCH: {
    exitCode: 73,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'an image manifest or config does not match its digest',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 70,
  },
  BLOB_MISMATCH: {
    exitCode: 74,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'an image layer does not match its digest',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 70,
  },
  APP_CONTENT_INVALID: {
    exitCode: 76,
    kind: 'failure',
    commands: ['install', 'check', 'verify'],
    meaning: 'an app on the bundle is malformed (compose file, an image not pinned by digest or not in the manifest)',
    next: 'do not use this bundle; export a new one',
    aktualizrLite: 70,
  },
  TARGET_FAILED_BEFORE: {
    exitCode: 77,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: 'this target failed on this device before and is refused without --force',
    next: 'use a newer target, or --force to try it again',
  },
  DOWNGRADE_REFUSED: {
    exitCode: 102,
    kind: 'failure',
    commands: ['install', 'check'],
    meaning: 'the bundle target is older than the current one (downgrade refused without --force)',
    next: 'use --force to downgrade on purpose',
  },

  // ── workstation commands ────────────────────────────────────────────────────────────────────────────────────────
  REPO_INVALID: {
    exitCode: 40,
    kind: 'failure',
    commands: [
      'target add',
      'app add',
      'export',
      'sim create',
      'keys rotate',
      'keys add-offline',
      'device register',
      'reports',
      'ca init',
      'ca fleet-key',
      'device certify',
      'device revoke',
    ],
    meaning: 'the factory repository is missing, incomplete or unreadable',
    next: 'check --repo (ferry repo init creates one)',
  },
  REPO_EXISTS: {
    exitCode: 41,
    kind: 'failure',
    commands: ['repo init'],
    meaning: 'the directory already holds a factory repository or other files',
    next: 'choose an empty directory',
  },
  TARGET_UNKNOWN: {
    exitCode: 42,
    kind: 'failure',
    commands: ['export', 'sim create'],
    meaning: 'the factory repository has no target of that name',
    next: 'ferry target add, or check the name',
  },
  TAG_NOT_ON_TARGET: {
    exitCode: 43,
    kind: 'failure',
    commands: ['export'],
    meaning: 'the target does not carry the tag given with --tag',
    next: 'choose one of the tags the target has',
  },
  EXPIRY_TOO_LATE: {
    exitCode: 44,
    kind: 'failure',
    commands: ['export', 'keys rotate', 'keys add-offline'],
    meaning: 'the requested expiry is later than the root metadata allows',
    next: 'choose fewer --expires-in-days, or rotate the root',
  },
  DESTINATION_NOT_EMPTY: {
    exitCode: 45,
    kind: 'failure',
    commands: ['export', 'sim create', 'sim image', 'bundle pack', 'ca fleet-key'],
    meaning: 'the destination directory exists and is not empty (for a file: it exists)',
    next: 'choose a new or empty directory',
  },
  COMMIT_UNKNOWN: {
    exitCode: 46,
    kind: 'failure',
    commands: ['target add'],
    meaning: 'the OSTree commit or ref cannot be found',
    next: 'check --commit/--ref and --ostree-repo',
  },
  TARGET_EXISTS: {
    exitCode: 47,
    kind: 'failure',
    commands: ['target add'],
    meaning: 'a target of that name already exists with other content',
    next: 'choose a new name or version',
  },
  KEY_NOT_AUTHORIZED: {
    exitCode: 58,
    kind: 'failure',
    commands: ['bundle sign'],
    meaning: "the key is not a targets key of the bundle's newest root.json: its signature would not count",
    next: 'sign with a targets key that root.json lists (ferry keys add-offline makes some)',
  },
  EXPORT_VERIFY_FAILED: {
    exitCode: 48,
    kind: 'failure',
    commands: ['export', 'bundle pack'],
    meaning: 'the exported bundle (or the packed archive, read back) did not pass verification',
    next: 'report it: the factory repository may be damaged',
  },
  MEDIA_WRITE_FAILED: {
    exitCode: 59,
    kind: 'failure',
    commands: ['export', 'bundle pack'],
    meaning:
      'the bundle could not be written: the media (or the scratch space beside the factory) is full or failing; the export (or pack) was undone',
    next: 'free space or change the stick, then export again',
  },
  MEDIA_FILE_TOO_LARGE: {
    exitCode: 61,
    kind: 'failure',
    commands: ['export', 'bundle pack'],
    meaning:
      "a file of the bundle is larger than the media's filesystem allows (FAT32: 4 GiB - 1 B); refused before it was written",
    next: 'use an exFAT (or ext4) stick, or write a bundle directory instead of one archive file',
  },
  APP_INVALID: {
    exitCode: 51,
    kind: 'failure',
    commands: ['app add'],
    meaning: "the app's compose project or images are invalid",
    next: 'read the message; fix the compose file or the images',
  },
  APP_UNKNOWN: {
    exitCode: 52,
    kind: 'failure',
    commands: ['target add'],
    meaning: 'the factory repository has no such app (or no such app version)',
    next: 'ferry app add, or check --app',
  },
  SIM_DEVICE_BRICKED: {
    exitCode: 49,
    kind: 'failure',
    commands: ['sim reboot'],
    meaning: 'the simulated device found no deployment that boots',
    next: 'the device is bricked: this must never happen after a ferry update',
  },

  // ── device keys and the reports devices leave on the stick ─────────────────────────────────────────────────────
  REPORTS_REJECTED: {
    exitCode: 53,
    kind: 'failure',
    commands: ['reports'],
    meaning:
      'a report on the media is rejected: a bad signature, an unknown device, unreadable content, or a device certificate the factory CA did not issue, outside its validity or revoked',
    next: 'trust only the valid rows; certify or register the device (ferry device certify, ferry device register) or find out who wrote the others',
  },
  REPORTS_UNREADABLE: {
    exitCode: 54,
    kind: 'failure',
    commands: ['reports'],
    meaning: 'the media or its reports directory cannot be read',
    next: 'check the path of the stick',
  },
  DEVICE_KEY_CONFLICT: {
    exitCode: 55,
    kind: 'failure',
    commands: ['device register'],
    meaning: 'another key is already registered for this device id',
    next: 'check --id and --key; remove <repo>/devices/<id>.pub only to replace the key on purpose',
  },
  DEVICE_ID_CONFLICT: {
    exitCode: 56,
    kind: 'failure',
    commands: ['device provision'],
    meaning: 'the device already has a key under another id; provisioning never changes them',
    next: 'leave out --id, or give the id the device has',
  },
  DEVICE_CERTIFICATE_INVALID: {
    exitCode: 19,
    kind: 'failure',
    commands: ['device certify', 'device provision', 'ca fleet-key', 'export'],
    meaning:
      "a certificate request is not an ed25519 or EC P-256 request signed by its own key for a valid device id, the CA key does not match the CA certificate, a certificate given to the device is not for the device's key and id, or a recipient certificate (--encrypt-to) cannot be read, holds no P-256 key, is not issued by the repository's device CA, is not valid now, is revoked or does not allow key agreement; nothing was written",
    next: 'give the request the device wrote (<storage>/ferry/device.csr or decryption.csr), the CA key of the repository, the certificate issued for this device, or a current decryption or fleet certificate of this CA (ferry device certify, ferry ca fleet-key)',
  },
  DEVICE_CA_UNAVAILABLE: {
    exitCode: 21,
    kind: 'failure',
    commands: ['device certify', 'device revoke', 'ca fleet-key', 'export'],
    meaning:
      'the device CA of the factory repository cannot answer: there is none (to issue or revoke a certificate, or to check a recipient certificate by), its key is not where given, its certificate is not valid now, or it issued no certificate with the serial or device id given; nothing was written',
    next: 'ferry ca init --repo <dir>; give the CA key with --ca-key; check the id or serial (<repo>/ca/issued/)',
  },
  DEVICE_KEY_INVALID: {
    exitCode: 57,
    kind: 'failure',
    commands: ['device provision', 'device register', 'verify'],
    meaning:
      'a device key cannot be read or is not an ed25519 key, a decryption or fleet key (--fleet-key, verify --decryption-key) is not an EC P-256 private key, or the device holds another fleet key of that name; nothing was written',
    next: 'check the key file (--key, --fleet-key, --decryption-key, <storage>/ferry/device-key.pem or decryption-key.pem); give a new fleet key another file name',
  },

  // ── files given on the command line that are there but are not what the command needs ─────────────────────────
  KEY_FILE_INVALID: {
    exitCode: 23,
    kind: 'failure',
    commands: ['bundle sign', 'repo init', 'keys rotate', 'keys add-offline'],
    meaning:
      'the key file cannot be read or is not an ed25519 private key (PKCS#8 PEM), or the signer configuration (signer.json) is not one ferry reads; nothing was signed',
    next: 'give the private key file of a targets key (ferry keys add-offline writes them), or fix the signer configuration (README: Keys in an HSM)',
  },
  SIGNER_PIN_INCORRECT: {
    exitCode: 9,
    kind: 'failure',
    commands: ['repo init', 'target add', 'export', 'keys rotate', 'keys add-offline', 'bundle sign'],
    meaning:
      "the PKCS#11 token holding a signing key refused the PIN (the factory's signer.json names where the PIN comes from); nothing was signed or written",
    next: 'give the right PIN (e.g. FERRY_PKCS11_PIN), mindful of the token locking after a few wrong tries',
  },
  SIGNER_FAILED: {
    exitCode: 10,
    kind: 'failure',
    commands: ['repo init', 'target add', 'export', 'keys rotate', 'keys add-offline', 'bundle sign'],
    meaning:
      'a signing key held outside ferry cannot sign: the PKCS#11 module does not load, the token or the key labelled there is not found, the PIN source is not set, or the signing command fails or prints a signature that does not verify against its public key; nothing was written',
    next: "check the signer's configuration (the key's .signer.json in the factory's keys/ROLE/, or the one given) and the token or the command it names",
  },
  TRUSTED_ROOT_UNREADABLE: {
    exitCode: 24,
    kind: 'failure',
    commands: ['verify', 'device provision'],
    meaning: 'the trusted root.json given cannot be read',
    next: "check --trusted-root (the factory's 1.root.json, or the root a device trusts)",
  },
  BUNDLE_TYPE_MISMATCH: {
    exitCode: 25,
    kind: 'failure',
    commands: ['export'],
    meaning:
      'the bundle already in the destination is of the other type (ci or prod) than this export; nothing was written',
    next: 'export with (or without) --prod to match it, or into a new directory',
  },
  METADATA_FORMAT_MISMATCH: {
    exitCode: 29,
    kind: 'failure',
    commands: ['export', 'keys add-offline'],
    meaning:
      "the TUF format asked for (--format ferry or fioctl) is not the one the factory signs in, or the bundle already in the destination is in the other format; or the factory's format has no such feature (offline targets keys in fioctl's); nothing was written",
    next: "export in the factory's format (ferry-repo.json metadataFormat), into a new directory; for the other format, make a factory with `ferry repo init --format`",
  },
  TRUSTED_ROOT_INVALID: {
    exitCode: 26,
    kind: 'failure',
    commands: ['verify', 'device provision'],
    meaning: 'the trusted root.json given is not a root metadata file a verification can start from',
    next: "give the factory's 1.root.json (or the root a device trusts) as --trusted-root",
  },
  FOUNDRIES_ROOT_NOT_PROVISIONED: {
    exitCode: 27,
    kind: 'failure',
    commands: ['install'],
    meaning:
      'the stick is in the Foundries (fioctl) format and this device trusts no Foundries root: a stick never brings its own trust',
    next: 'provision the root the factory signs with: ferry device provision --trusted-root <N.root.json>, then install again',
  },
  TRUSTED_ROOT_NOT_CHAINED: {
    exitCode: 28,
    kind: 'failure',
    commands: ['device provision'],
    meaning:
      'the device already trusts a root of this format, and the root given does not chain from it (each version signed by the threshold of the old and the new root keys); nothing was changed',
    next: 'give every root version from the trusted one up to the new one, in order, or keep the trusted root',
  },

  // ── paths given on the command line (checked before the command does anything) ─────────────────────────────────
  PATH_MISSING: {
    exitCode: 62,
    kind: 'failure',
    commands: PATH_COMMANDS,
    meaning: 'a path given does not exist or cannot be reached',
    next: 'check the path (is the stick mounted?)',
  },
  PATH_WRONG_TYPE: {
    exitCode: 63,
    kind: 'failure',
    commands: PATH_COMMANDS,
    meaning:
      'a path given is a file where a directory belongs (or lies under a file), or a directory where a file belongs',
    next: 'check the path',
  },
  PATH_NOT_WRITABLE: {
    exitCode: 64,
    kind: 'failure',
    commands: PATH_COMMANDS,
    meaning: 'a path the command writes is on a read-only file system or not writable; nothing was written',
    next: 'remount it read-write, or choose another place',
  },
  PATH_SPECIAL: {
    exitCode: 65,
    kind: 'failure',
    commands: PATH_COMMANDS,
    meaning: 'a path given is a device, a pipe or a socket, or lies on a kernel file system (/proc, /sys)',
    next: 'give a regular file or directory',
  },
} as const satisfies Record<string, OutcomeInfo>;

export type Outcome = keyof typeof OUTCOMES;

export function exitCodeOf(outcome: Outcome): number {
  return OUTCOMES[outcome].exitCode;
}

/** The number an outcome ends the program with, in the table the device's configuration asks for. */
export function exitCodeIn(table: ExitCodeTable, outcome: Outcome): number {
  const info: OutcomeInfo = OUTCOMES[outcome];
  return table === 'aktualizr-lite' ? (info.aktualizrLite ?? info.exitCode) : info.exitCode;
}
