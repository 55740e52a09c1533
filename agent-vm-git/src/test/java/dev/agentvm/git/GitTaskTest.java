package dev.agentvm.git;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.strings;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class GitTaskTest {
  private static GitTask.Builder task() {
    return GitTask.builder(Path.of("/tmp/repo"), "main").command("true");
  }

  @Test
  void defaultsAndValidation() {
    GitTask t = task().id("abc").build();
    assertEquals("agent/abc", t.branch());
    assertEquals(GitTask.DirtyPolicy.FAIL, t.onDirty());
    assertThrows(IllegalArgumentException.class, () -> task().id("../x").build());
    assertThrows(IllegalArgumentException.class, () -> task().branch("-x").build());
    assertThrows(
        IllegalArgumentException.class,
        () -> GitTask.builder(Path.of("/r"), "--upload-pack=x").command("true").build());
    assertThrows(
        IllegalArgumentException.class, () -> task().env("T", "a").secretEnv("T", "b").build());
  }

  @Test
  void toStringNamesSecretsButNeverShowsThem() {
    GitTask t = task().secretEnv("API_TOKEN", "very-secret-value").build();
    assertTrue(t.toString().contains("API_TOKEN"));
    assertFalse(t.toString().contains("very-secret-value"));
  }

  /**
   * Whatever the text and however often the secret sits in it, it does not survive redaction.
   * (Secrets are tokens: lowercase letters here, so that no occurrence can be formed with the
   * upper-case marker's own letters.)
   */
  @Test
  void redactionLeavesNoSecretBehind() {
    qt().forAll(
            strings().betweenCodePoints('a', 'z').ofLengthBetween(4, 12),
            strings().basicLatinAlphabet().ofLengthBetween(0, 40),
            strings().basicLatinAlphabet().ofLengthBetween(0, 40))
        .checkAssert(
            (secret, before, after) -> {
              GitTask t = task().secretEnv("S", secret).build();
              String text = before + secret + after + secret;
              String red = GitTaskRunner.redact(t, text);
              assertTrue(red.contains(GitTaskRunner.REDACTED));
              assertFalse(red.contains(secret), red);
            });
  }
}
