/**
 * node-forge's ASN.1 codec and the byte-string helpers it works on, imported alone: the package's index loads all of
 * node-forge (TLS, PKCS#12…), which every command line would otherwise carry. Typed as the package's own typings
 * type them.
 */
declare module 'node-forge/lib/asn1.js' {
  import type forge from 'node-forge';
  const asn1: typeof forge.asn1;
  export default asn1;
}

declare module 'node-forge/lib/util.js' {
  import type forge from 'node-forge';
  const util: typeof forge.util;
  export default util;
}
