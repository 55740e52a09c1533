package dev.agentvm.network.egress;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * The certificate authority an egress proxy terminates HTTPS with, for the domains a secret is
 * bound to: the guest trusts its certificate ({@link #certificatePem()}), the host holds its key.
 * Certificates for single host names are made from it as needed (BouncyCastle builds them; the
 * JDK's TLS uses them). Keys are ECDSA P-256.
 *
 * <p>{@link #loadOrCreate(Path)} keeps it in a directory ({@code ca.pem}, and {@code ca.key}
 * readable by the owner only), so that sandboxes paused by one process and resumed by another keep
 * trusting the same authority.
 */
public final class EgressCa {
  static final String CERT_FILE = "ca.pem";
  static final String KEY_FILE = "ca.key";
  private static final Duration CA_VALIDITY = Duration.ofDays(3650);
  private static final Duration LEAF_VALIDITY = Duration.ofDays(30);
  private static final int LEAF_CACHE = 256;
  private static final SecureRandom RANDOM = new SecureRandom();

  private final X509Certificate cert;
  private final PrivateKey key;
  private final KeyPair leafKeys;
  private final Object lock = new Object();
  private final Map<String, Leaf> leaves = new LinkedHashMap<>(16, 0.75f, true); // guarded by lock

  private record Leaf(SSLContext context, Instant notAfter) {}

  private EgressCa(X509Certificate cert, PrivateKey key) {
    this.cert = cert;
    this.key = key;
    this.leafKeys = newKeyPair();
  }

  /** A new authority held in memory only. */
  public static EgressCa create() {
    KeyPair kp = newKeyPair();
    X500Name name =
        new X500Name("CN=agent-vm egress CA " + Long.toHexString(RANDOM.nextLong() >>> 1));
    Instant now = Instant.now();
    X509v3CertificateBuilder b =
        new JcaX509v3CertificateBuilder(
            name,
            serial(),
            Date.from(now.minus(Duration.ofHours(1))),
            Date.from(now.plus(CA_VALIDITY)),
            name,
            kp.getPublic());
    try {
      JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
      b.addExtension(Extension.basicConstraints, true, new BasicConstraints(0));
      b.addExtension(
          Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
      b.addExtension(
          Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(kp.getPublic()));
      return new EgressCa(sign(b, kp.getPrivate()), kp.getPrivate());
    } catch (GeneralSecurityException | CertIOException e) {
      throw new IllegalStateException("cannot make an egress CA: " + e, e);
    }
  }

  /**
   * The authority kept in {@code dir}, made there first if it has none (callers serialize calls for
   * one directory).
   */
  public static EgressCa loadOrCreate(Path dir) throws IOException {
    Path certFile = dir.resolve(CERT_FILE);
    Path keyFile = dir.resolve(KEY_FILE);
    if (Files.isRegularFile(certFile) && Files.isRegularFile(keyFile)) {
      return load(certFile, keyFile);
    }
    Files.createDirectories(dir);
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
    EgressCa ca = create();
    Path tmp = dir.resolve(KEY_FILE + ".tmp");
    Files.deleteIfExists(tmp);
    Files.createFile(
        tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    Files.writeString(tmp, pem("PRIVATE KEY", ca.key.getEncoded()));
    Files.move(tmp, keyFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    Path ctmp = dir.resolve(CERT_FILE + ".tmp");
    Files.writeString(ctmp, ca.certificatePem());
    Files.move(ctmp, certFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    return ca;
  }

  private static EgressCa load(Path certFile, Path keyFile) throws IOException {
    try {
      X509Certificate c =
          (X509Certificate)
              CertificateFactory.getInstance("X.509")
                  .generateCertificate(new ByteArrayInputStream(Files.readAllBytes(certFile)));
      String pem = Files.readString(keyFile, StandardCharsets.US_ASCII);
      String body =
          pem.replace("-----BEGIN PRIVATE KEY-----", "")
              .replace("-----END PRIVATE KEY-----", "")
              .replaceAll("\\s", "");
      PrivateKey k =
          KeyFactory.getInstance("EC")
              .generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(body)));
      return new EgressCa(c, k);
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new IOException("unreadable egress CA in " + certFile.getParent() + ": " + e, e);
    }
  }

  /** The authority's certificate, which the guest trusts. */
  public X509Certificate certificate() {
    return cert;
  }

  /** The certificate in PEM, as the guest's trust files hold it. */
  public String certificatePem() {
    try {
      return pem("CERTIFICATE", cert.getEncoded());
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * A server-side TLS context presenting a certificate for {@code host} (a host name) signed by
   * this authority; made once and kept while it has more than a day left.
   */
  public SSLContext serverContext(String host) {
    Objects.requireNonNull(host, "host");
    synchronized (lock) {
      return leaf(host);
    }
  }

  private SSLContext leaf(String host) {
    Leaf l = leaves.get(host);
    if (l != null && l.notAfter().isAfter(Instant.now().plus(Duration.ofDays(1)))) {
      return l.context();
    }
    try {
      Instant now = Instant.now();
      Instant notAfter = now.plus(LEAF_VALIDITY);
      X509v3CertificateBuilder b =
          new JcaX509v3CertificateBuilder(
              cert,
              serial(),
              Date.from(now.minus(Duration.ofHours(1))),
              Date.from(notAfter),
              new X500Name("CN=" + host),
              leafKeys.getPublic());
      JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
      b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
      b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
      b.addExtension(
          Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
      b.addExtension(
          Extension.subjectAlternativeName,
          false,
          new GeneralNames(new GeneralName(GeneralName.dNSName, host)));
      b.addExtension(
          Extension.subjectKeyIdentifier,
          false,
          ext.createSubjectKeyIdentifier(leafKeys.getPublic()));
      b.addExtension(
          Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(cert));
      X509Certificate leaf = sign(b, key);
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      char[] none = new char[0];
      ks.setKeyEntry("leaf", leafKeys.getPrivate(), none, new X509Certificate[] {leaf, cert});
      KeyManagerFactory kmf =
          KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      kmf.init(ks, none);
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(kmf.getKeyManagers(), null, null);
      leaves.put(host, new Leaf(ctx, notAfter));
      if (leaves.size() > LEAF_CACHE) {
        leaves.remove(leaves.keySet().iterator().next());
      }
      return ctx;
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException("cannot make a certificate for " + host + ": " + e, e);
    }
  }

  private static X509Certificate sign(X509v3CertificateBuilder b, PrivateKey by)
      throws GeneralSecurityException {
    try {
      return new JcaX509CertificateConverter()
          .getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(by)));
    } catch (OperatorCreationException e) {
      throw new GeneralSecurityException(e);
    }
  }

  private static KeyPair newKeyPair() {
    try {
      KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
      g.initialize(new ECGenParameterSpec("secp256r1"));
      return g.generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("no EC P-256 in this JDK: " + e, e);
    }
  }

  private static BigInteger serial() {
    return new BigInteger(127, RANDOM);
  }

  private static String pem(String type, byte[] der) {
    return "-----BEGIN "
        + type
        + "-----\n"
        + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
        + "\n-----END "
        + type
        + "-----\n";
  }

  /** Whether {@code k} is this authority's public key (for tests). */
  boolean isKey(PublicKey k) {
    return cert.getPublicKey().equals(k);
  }
}
