/** The release tool as a library (the demo and tests build and sign release trees with it). */
export {
  type BuildReleaseOptions,
  type BuiltRelease,
  buildRelease,
  COMPAT_FILE,
  forEachChunk,
  hashFile,
  publishArtifact,
  publishChunkIndex,
  type RolloutChange,
  renderCompat,
  republishCompat,
  type SetRolloutOptions,
  type SetWithdrawnOptions,
  SIGNATURE_FILE,
  setRollout,
  setWithdrawn,
} from './build.js';
export { main as runReleaseCommand, USAGE } from './command.js';
export {
  type CertificateAndKey,
  type DevKeys,
  type GenerateKeysOptions,
  generateDevKeys,
  generateRootCa,
  issueIntermediate,
  issueSigningCert,
  KEY_FILES,
  loadKeys,
  refuseExistingKeys,
  saveKeys,
} from './keys.js';
export { type Revoked, type RevokeOptions, revokeCertificates } from './revoke.js';
export { type RotatedRoot, type RotateRootOptions, rotateRoot } from './rotate.js';
export {
  REVOCATIONS_FILE,
  ROOT_ROTATION_FILE,
  readTreeRevocations,
  readTreeRotation,
  type SignOptions,
  signDocument,
  signRevocationList,
  signRootRotation,
  type TreeRotation,
  treeRotationFile,
} from './sign.js';
export {
  ensureDevSupportCa,
  generateSupportCa,
  issueSupportCert,
  loadSupportCa,
  requireSupportCa,
  SUPPORT_CA_FILES,
  type SupportCert,
  type SupportCertRequest,
  supportCaPublicKeys,
} from './support-ca.js';
export { type VerifiedArtifact, type VerifiedTree, type VerifyTreeOptions, verifyTree } from './verify.js';
