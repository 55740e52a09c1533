package dev.agentvm.network.egress;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * A credential the guest uses without ever holding it. The guest's variable {@link #name()} holds
 * {@link #placeholder()}; in HTTPS requests to the domains the secret is bound to, the host puts
 * the value in: into the header {@link #header(String, String)} sets, and in place of the
 * placeholder in the {@code Authorization} header and the headers {@link #inHeader(String)} names.
 * Nowhere else (not the URL, other headers or bodies: a server may echo those back); elsewhere the
 * placeholder stays what it is.
 *
 * <pre>{@code
 * EgressSecret key = EgressSecret.of("OPENAI_API_KEY", System.getenv("OPENAI_API_KEY"))
 *     .boundTo("api.openai.com")
 *     .header("Authorization", "Bearer {value}");
 * }</pre>
 *
 * <p>The value is held in this object only: {@link #toString()} does not show it, and a sandbox's
 * record on disk keeps the name, domains and header but not the value (a sandbox resumed by another
 * process gets it again through its policy).
 */
public final class EgressSecret {
  private static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
  private static final Pattern HEADER = Pattern.compile("[A-Za-z0-9-]{1,64}");

  /** Where the value goes in a header template. */
  public static final String VALUE = "{value}";

  private final String name;
  private final @Nullable String value;
  private final List<String> domains;
  private final @Nullable String headerName;
  private final @Nullable String headerTemplate;
  private final List<String> inHeaders; // lower case

  private EgressSecret(
      String name,
      @Nullable String value,
      List<String> domains,
      @Nullable String headerName,
      @Nullable String headerTemplate,
      List<String> inHeaders) {
    this.name = name;
    this.value = value;
    this.domains = List.copyOf(domains);
    this.headerName = headerName;
    this.headerTemplate = headerTemplate;
    this.inHeaders = List.copyOf(inHeaders);
  }

  /**
   * A secret for the guest variable {@code name} (letters, digits, underscores), bound to no domain
   * yet.
   *
   * @throws IllegalArgumentException if the name is not a variable name or the value is empty or
   *     holds a line break or NUL (it could not travel in a header)
   */
  public static EgressSecret of(String name, String value) {
    return new EgressSecret(checkName(name), checkValue(value), List.of(), null, null, List.of());
  }

  /**
   * The same secret without its value: what a sandbox's record gives back. Requests to its domains
   * are tunnelled untouched and carry the placeholder until the value is given again.
   */
  public static EgressSecret withoutValue(
      String name,
      List<String> domains,
      @Nullable String headerName,
      @Nullable String template,
      List<String> inHeaders) {
    EgressSecret s = new EgressSecret(checkName(name), null, List.of(), null, null, List.of());
    for (String d : domains) {
      s = s.boundTo(d);
    }
    for (String h : inHeaders) {
      s = s.inHeader(h);
    }
    return headerName == null || template == null ? s : s.header(headerName, template);
  }

  private static String checkName(String name) {
    Objects.requireNonNull(name, "name");
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException("not a variable name: '" + name + "'");
    }
    return name;
  }

  private static String checkValue(String value) {
    Objects.requireNonNull(value, "value");
    if (value.isEmpty()) {
      throw new IllegalArgumentException("a secret's value is empty");
    }
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c == '\r' || c == '\n' || c == 0 || c > 0xff) {
        throw new IllegalArgumentException(
            "a secret's value may not hold line breaks, NUL or characters beyond Latin-1");
      }
    }
    return value;
  }

  /**
   * Binds the secret to one more domain: {@code api.example.com} exactly or {@code *.example.com}
   * below it. The policy must allow the domain too.
   */
  public EgressSecret boundTo(String domain) {
    Objects.requireNonNull(domain, "domain");
    boolean wildcard = domain.startsWith("*.");
    String n =
        EgressPolicy.normalizeName(wildcard ? domain.substring(2) : domain)
            .orElseThrow(() -> new IllegalArgumentException("not a domain: '" + domain + "'"));
    if (wildcard && n.indexOf('.') < 0) {
      throw new IllegalArgumentException("'" + domain + "' would bind a whole top-level domain");
    }
    List<String> all = new ArrayList<>(domains);
    String rule = wildcard ? "*." + n : n;
    if (!all.contains(rule)) {
      all.add(rule);
    }
    return new EgressSecret(name, value, all, headerName, headerTemplate, inHeaders);
  }

  /**
   * Sets header {@code header} on every request to the bound domains, to {@code template} with
   * {@link #VALUE} replaced by the value (e.g. {@code "Bearer {value}"}); the guest's own header of
   * that name is dropped.
   */
  public EgressSecret header(String header, String template) {
    Objects.requireNonNull(header, "header");
    Objects.requireNonNull(template, "template");
    if (!HEADER.matcher(header).matches() || header.equalsIgnoreCase("host")) {
      throw new IllegalArgumentException("not a header name for a secret: '" + header + "'");
    }
    if (!template.contains(VALUE)) {
      throw new IllegalArgumentException("the template has no " + VALUE + ": '" + template + "'");
    }
    for (int i = 0; i < template.length(); i++) {
      char c = template.charAt(i);
      if (c < 0x20 || c > 0x7e) {
        throw new IllegalArgumentException("the header template holds a control character");
      }
    }
    return new EgressSecret(name, value, domains, header, template, inHeaders);
  }

  /**
   * Lets the placeholder be replaced in one more request header, e.g. {@code X-Api-Key} (it is in
   * {@code Authorization} always). Name only headers the bound servers never echo back.
   */
  public EgressSecret inHeader(String header) {
    Objects.requireNonNull(header, "header");
    if (!HEADER.matcher(header).matches() || header.equalsIgnoreCase("host")) {
      throw new IllegalArgumentException("not a header name for a secret: '" + header + "'");
    }
    String lower = header.toLowerCase(Locale.ROOT);
    List<String> all = new ArrayList<>(inHeaders);
    if (!all.contains(lower)) {
      all.add(lower);
    }
    return new EgressSecret(name, value, domains, headerName, headerTemplate, all);
  }

  /** The extra headers the placeholder is replaced in, lower case. */
  public List<String> inHeaders() {
    return inHeaders;
  }

  /** Whether the placeholder is replaced in header {@code lowerName}. */
  boolean substitutesIn(String lowerName) {
    return lowerName.equals("authorization") || inHeaders.contains(lowerName);
  }

  /** The guest variable that holds the placeholder. */
  public String name() {
    return name;
  }

  /** What the guest sees instead of the value: {@code agentvm-secret-NAME-placeholder}. */
  public String placeholder() {
    return "agentvm-secret-" + name + "-placeholder";
  }

  /** The domain rules it is bound to, as written. */
  public List<String> domains() {
    return domains;
  }

  /** The header it sets, if any. */
  public Optional<String> headerName() {
    return Optional.ofNullable(headerName);
  }

  /** The header's template, if any. */
  public Optional<String> headerTemplate() {
    return Optional.ofNullable(headerTemplate);
  }

  /** Whether this process knows the value (a record read back from disk does not). */
  public boolean hasValue() {
    return value != null;
  }

  /** The value, for the proxy only. */
  @Nullable String value() {
    return value;
  }

  /** Whether requests to {@code host} (a normalized name) get the value. */
  boolean bindsTo(String host) {
    String h = host.toLowerCase(Locale.ROOT);
    for (String d : domains) {
      if (d.startsWith("*.") ? h.endsWith(d.substring(1)) : h.equals(d)) {
        return true;
      }
    }
    return false;
  }

  /** The name, domains and header, never the value. */
  @Override
  public String toString() {
    return "EgressSecret["
        + name
        + " -> "
        + domains
        + (headerName == null ? "" : ", header " + headerName)
        + (value == null ? ", no value here" : "")
        + "]";
  }
}
