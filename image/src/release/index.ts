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
  issueSigningCert,
  KEY_FILES,
  loadKeys,
  refuseExistingKeys,
  saveKeys,
} from './keys.js';
export { type Revoked, type RevokeOptions, revokeCertificates } from './revoke.js';
export {
  REVOCATIONS_FILE,
  readTreeRevocations,
  type SignOptions,
  signDocument,
  signRevocationList,
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
