package dev.agentvm.network.egress;

import dev.agentvm.internal.LogText;
import java.net.IDN;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * Where a sandbox may connect, decided on the host for each connection: allowed domains (exact, or
 * {@code *.suffix} for every name below a domain, not the domain itself), allowed ports, and
 * allowed address blocks. Immutable; {@link #none()} allows nothing.
 *
 * <p>A name must match a domain rule; it is then resolved on the host ({@link EgressResolver}) and
 * each address is checked again: loopback, link-local (the cloud metadata service 169.254.169.254
 * among them), private (RFC 1918, fc00::/7), shared (100.64.0.0/10), multicast, reserved and this
 * host's own addresses are refused unless an address-block rule contains them, so a name that
 * resolves to a private address (DNS rebinding) gets nowhere. An address literal must lie in an
 * address-block rule. The decision names the addresses that passed: the connection is made to
 * those, not to a second lookup.
 *
 * <pre>{@code
 * EgressPolicy p = EgressPolicy.builder().allowDomain("pypi.org").allowDomain("*.pythonhosted.org")
 *     .ports(443).build();
 * }</pre>
 */
public final class EgressPolicy {
  private static final Pattern LABEL = Pattern.compile("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?");

  private final List<String> exact;
  private final List<String> suffixes; // ".example.com"
  private final Set<Integer> ports;
  private final Set<Integer> rawTunnelPorts;
  private final List<AddressBlock> blocks;
  private final List<EgressSecret> secrets;
  private final @Nullable Set<InetAddress> fixedOwn; // given by the builder, or read as needed
  private volatile Set<InetAddress> own = Set.of();
  private volatile long ownReadNanos;

  private EgressPolicy(Builder b) {
    this.exact = List.copyOf(b.exact);
    this.suffixes = List.copyOf(b.suffixes);
    this.ports = Set.copyOf(b.ports);
    this.rawTunnelPorts = Set.copyOf(b.rawTunnelPorts);
    this.blocks = List.copyOf(b.blocks);
    this.secrets = List.copyOf(b.secrets.values());
    this.fixedOwn = b.own;
  }

  /** A policy that allows nothing. */
  public static EgressPolicy none() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * Decides a connection to {@code host} (a name, or an address literal; IPv6 in brackets or not)
   * on {@code port}, resolving names with {@code resolver}. Never throws for what a guest asks:
   * anything unusable is a denial with its reason.
   */
  public EgressDecision decide(String host, int port, EgressResolver resolver) {
    // the guest's words: cleaned before they reach a decision, an error page or an audit record
    String shown = LogText.clean(host.length() > 255 ? host.substring(0, 255) + "..." : host);
    if (port < 1 || port > 65535) {
      return EgressDecision.deny(shown, port, "port", "port " + port + " is not a TCP port");
    }
    if (!ports.contains(port)) {
      return EgressDecision.deny(
          shown, port, "port", "port " + port + " is not allowed (allowed: " + sortedPorts() + ")");
    }
    Optional<InetAddress> literal = AddressBlock.literal(host);
    if (literal.isPresent()) {
      InetAddress a = literal.get();
      for (AddressBlock b : blocks) {
        if (b.contains(a)) {
          return new EgressDecision(true, shown, port, List.of(a), "block " + b, "in " + b);
        }
      }
      return EgressDecision.deny(
          shown, port, "address", a.getHostAddress() + " is in no allowed address block");
    }
    Optional<String> name = normalizeName(host);
    if (name.isEmpty()) {
      return EgressDecision.deny(shown, port, "name", "'" + shown + "' is not a host name");
    }
    String n = name.get();
    Optional<String> rule = domainRule(n);
    if (rule.isEmpty()) {
      return EgressDecision.deny(n, port, "domain", n + " is not an allowed domain");
    }
    List<InetAddress> resolved;
    try {
      resolved = resolver.resolve(n);
    } catch (UnknownHostException | RuntimeException e) {
      return EgressDecision.deny(n, port, "resolve", n + " does not resolve on the host");
    }
    List<InetAddress> ok = new ArrayList<>();
    String refused = "";
    for (InetAddress a : resolved) {
      InetAddress x = AddressBlock.normalize(a);
      String why = SpecialAddresses.why(x, ownAddresses());
      if (why == null || blocks.stream().anyMatch(b -> b.contains(x))) {
        ok.add(x);
      } else if (refused.isEmpty()) {
        refused = x.getHostAddress() + " is " + why;
      }
    }
    if (ok.isEmpty()) {
      return EgressDecision.deny(
          n,
          port,
          "address",
          n
              + " resolves only to addresses a guest may not reach"
              + (refused.isEmpty() ? "" : ": " + refused));
    }
    return new EgressDecision(
        true, n, port, ok, "domain " + rule.get(), "allowed by " + rule.get());
  }

  /** This host's addresses, read again at most every 10 s: interfaces come and go. */
  private Set<InetAddress> ownAddresses() {
    Set<InetAddress> fixed = fixedOwn;
    if (fixed != null) {
      return fixed;
    }
    long now = System.nanoTime();
    if (ownReadNanos == 0 || now - ownReadNanos > 10_000_000_000L) {
      own = SpecialAddresses.ownAddresses();
      ownReadNanos = now;
    }
    return own;
  }

  private Optional<String> domainRule(String name) {
    if (exact.contains(name)) {
      return Optional.of(name);
    }
    for (String s : suffixes) {
      if (name.endsWith(s)) {
        return Optional.of("*" + s);
      }
    }
    return Optional.empty();
  }

  /** The domain rules as written to the builder ({@code example.com}, {@code *.example.com}). */
  public List<String> domains() {
    List<String> all = new ArrayList<>(exact);
    suffixes.forEach(x -> all.add("*" + x));
    return List.copyOf(all);
  }

  /** The allowed ports, in order. */
  public List<Integer> ports() {
    return sortedPorts();
  }

  /**
   * Ports where a {@code CONNECT} tunnel may carry other than TLS (SSH on 22); on every other port
   * a tunnel must begin with a TLS ClientHello naming its host. Only allowed ports are reached at
   * all.
   */
  public java.util.Set<Integer> rawTunnelPorts() {
    return rawTunnelPorts;
  }

  /** The allowed address blocks in CIDR notation. */
  public List<String> blocks() {
    return blocks.stream().map(AddressBlock::toString).toList();
  }

  /** The secrets whose values go into HTTPS requests to their domains. */
  public List<EgressSecret> secrets() {
    return secrets;
  }

  /** The secrets with a value here that are bound to {@code host} (a normalized name). */
  List<EgressSecret> secretsFor(String host) {
    List<EgressSecret> out = new ArrayList<>();
    for (EgressSecret s : secrets) {
      if (s.hasValue() && s.bindsTo(host)) {
        out.add(s);
      }
    }
    return out;
  }

  private List<Integer> sortedPorts() {
    return ports.stream().sorted().toList();
  }

  /**
   * A host name in the form rules are written in: lower case, ASCII (IDN as punycode), no final
   * dot; empty if it is not a valid host name (a name whose last label is all digits is not one:
   * {@code 127.1} is an address in disguise).
   */
  static Optional<String> normalizeName(String host) {
    if (host.isEmpty() || host.length() > 253 + 1) {
      return Optional.empty();
    }
    String ascii;
    try {
      ascii = IDN.toASCII(host, IDN.USE_STD3_ASCII_RULES).toLowerCase(Locale.ROOT);
    } catch (IllegalArgumentException e) {
      return Optional.empty();
    }
    if (ascii.endsWith(".")) {
      ascii = ascii.substring(0, ascii.length() - 1);
    }
    if (ascii.isEmpty() || ascii.length() > 253) {
      return Optional.empty();
    }
    String[] labels = ascii.split("\\.", -1);
    for (String l : labels) {
      if (!LABEL.matcher(l).matches()) {
        return Optional.empty();
      }
    }
    if (labels[labels.length - 1].chars().allMatch(Character::isDigit)) {
      return Optional.empty();
    }
    return Optional.of(ascii);
  }

  @Override
  public String toString() {
    List<String> domains = new ArrayList<>(exact);
    suffixes.forEach(s -> domains.add("*" + s));
    return "EgressPolicy[domains="
        + domains
        + ", ports="
        + sortedPorts()
        + ", blocks="
        + blocks
        + (rawTunnelPorts.isEmpty() ? "" : ", rawTunnelPorts=" + rawTunnelPorts)
        + (secrets.isEmpty() ? "" : ", secrets=" + secrets)
        + "]";
  }

  /** Builds an {@link EgressPolicy}; by default nothing is allowed and the ports are 80 and 443. */
  public static final class Builder {
    private final Set<String> exact = new LinkedHashSet<>();
    private final Set<String> suffixes = new LinkedHashSet<>();
    private final Set<Integer> ports = new LinkedHashSet<>(List.of(80, 443));
    private final Set<Integer> rawTunnelPorts = new LinkedHashSet<>();
    private final List<AddressBlock> blocks = new ArrayList<>();
    private final java.util.Map<String, EgressSecret> secrets = new java.util.LinkedHashMap<>();
    private @Nullable Set<InetAddress> own;

    private Builder() {}

    /**
     * Allows a domain: {@code example.com} exactly, or {@code *.example.com} for every name below
     * it (not {@code example.com} itself: allow both if both are meant).
     *
     * @throws IllegalArgumentException if it is not a host name or a {@code *.} pattern of one
     */
    public Builder allowDomain(String domain) {
      Objects.requireNonNull(domain, "domain");
      boolean wildcard = domain.startsWith("*.");
      String name = wildcard ? domain.substring(2) : domain;
      String n =
          normalizeName(name)
              .orElseThrow(() -> new IllegalArgumentException("not a domain: '" + domain + "'"));
      if (wildcard && n.indexOf('.') < 0) {
        throw new IllegalArgumentException(
            "'" + domain + "' would allow a whole top-level domain; name the domain under it");
      }
      (wildcard ? suffixes : exact).add(wildcard ? "." + n : n);
      return this;
    }

    /**
     * Ports where a {@code CONNECT} tunnel may carry other than TLS, e.g. 22 for SSH (none by
     * default: elsewhere a tunnel must start with a TLS ClientHello naming its host, so plain HTTP
     * in a tunnel cannot name another site on the same address). The port must be allowed too.
     */
    public Builder rawTunnelPorts(int... raw) {
      rawTunnelPorts.clear();
      for (int p : raw) {
        if (p < 1 || p > 65535) {
          throw new IllegalArgumentException("not a TCP port: " + p);
        }
        rawTunnelPorts.add(p);
      }
      return this;
    }

    /** The ports connections may go to (replaces the default 80 and 443). */
    public Builder ports(int... allowed) {
      ports.clear();
      for (int p : allowed) {
        if (p < 1 || p > 65535) {
          throw new IllegalArgumentException("not a TCP port: " + p);
        }
        ports.add(p);
      }
      return this;
    }

    /**
     * Allows an address block, e.g. {@code 203.0.113.0/24}: address literals in it, and names that
     * resolve into it even where it is private or loopback (a rule that names such a block is the
     * only way a guest reaches one).
     */
    public Builder allowBlock(String cidr) {
      AddressBlock b = AddressBlock.parse(cidr);
      if (!blocks.contains(b)) {
        blocks.add(b);
      }
      return this;
    }

    /**
     * Adds a secret (replacing one of the same name): its placeholder goes into the guest's
     * environment and its value into HTTPS requests to its domains, which the host then terminates.
     */
    public Builder secret(EgressSecret secret) {
      secrets.put(secret.name(), Objects.requireNonNull(secret, "secret"));
      return this;
    }

    /** This host's own addresses, refused like private ones (default: every interface's). */
    Builder ownAddresses(Set<InetAddress> addresses) {
      this.own = Set.copyOf(addresses);
      return this;
    }

    public EgressPolicy build() {
      return new EgressPolicy(this);
    }
  }
}
