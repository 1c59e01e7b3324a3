import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { composeAppManifest, ferryAppManifest, parseAppManifest } from '../../src/apps/format/app-manifest.js';
import { digestOf, MEDIA } from '../../src/apps/format/digest.js';

/** The two forms of app manifest, and what each must hold to be read. */

const archive = { mediaType: MEDIA.appArchive, digest: digestOf('archive'), size: 7 };
const config = { mediaType: MEDIA.appConfig, digest: digestOf('{}'), size: 2 };
const image = {
  ref: `ferry.local/x/y@${digestOf('m')}`,
  manifest: { mediaType: MEDIA.ociManifest, digest: digestOf('m'), size: 1 },
};
const json = (bytes: Buffer) => JSON.parse(bytes.toString('utf8'));

describe('app manifests', () => {
  test("ferry's form: the archive, the app's name and the images it pins", () => {
    const parsed = parseAppManifest(json(ferryAppManifest('web', config, archive, [image])), 'web');
    assert.deepEqual(parsed, { form: 'ferry', archive, images: [image] });
    assert.throws(
      () => parseAppManifest(json(ferryAppManifest('web', config, archive, [image])), 'db'),
      /names app "web", not "db"/,
    );
    const withoutImages = json(ferryAppManifest('web', config, archive, []));
    delete withoutImages.images;
    assert.throws(() => parseAppManifest(withoutImages, 'web'), /images must list/);
    const twoLayers = json(ferryAppManifest('web', config, archive, []));
    twoLayers.layers.push(archive);
    assert.throws(() => parseAppManifest(twoLayers, 'web'), /exactly one layer/);
  });

  test("compose-publish's form: version v1 and the archive as layers[0]; layers metadata after it is allowed", () => {
    const bytes = composeAppManifest(archive);
    const parsed = parseAppManifest(json(bytes), 'any-name');
    assert.equal(parsed.form, 'compose-app');
    assert.equal(parsed.archive.digest, archive.digest);
    assert.equal(parsed.archive.size, archive.size);
    assert.equal(parsed.images, undefined);

    const withMeta = json(bytes);
    withMeta.layers.push({
      mediaType: 'application/octet-stream',
      digest: digestOf('meta'),
      size: 4,
      annotations: { 'layers-meta': 'v1' },
    });
    assert.equal(parseAppManifest(withMeta, 'a').form, 'compose-app');
  });

  test('a manifest that is neither form, or another compose-app version, is refused with what is wrong', () => {
    const v0 = json(composeAppManifest(archive));
    v0.annotations['compose-app'] = 'v0';
    assert.throws(() => parseAppManifest(v0, 'a'), /compose-app manifest version "v0" is not supported/);
    const noLayers = json(composeAppManifest(archive));
    noLayers.layers = [];
    assert.throws(() => parseAppManifest(noLayers, 'a'), /layers\[0\] must be the descriptor of the compose archive/);
    const badDigest = json(composeAppManifest(archive));
    badDigest.layers[0].digest = 'md5:abc';
    assert.throws(() => parseAppManifest(badDigest, 'a'), /layers\[0\]/);
    const notOci = json(composeAppManifest(archive));
    notOci.mediaType = MEDIA.dockerManifest;
    assert.throws(() => parseAppManifest(notOci, 'a'), /not an OCI manifest/);
    assert.throws(() => parseAppManifest(null, 'a'), /not an OCI manifest/);
    const unnamed = json(composeAppManifest(archive));
    delete unnamed.annotations;
    assert.throws(
      () => parseAppManifest(unnamed, 'a'),
      /is annotated neither "compose-app" \(compose-publish.s form\) nor "org.ferry.app.name"/,
    );
  });
});
