package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.strings;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

class GuestPathsTest {
  private static final Path ROOT = Path.of("/ws/input");

  @Test
  void whateverIsAcceptedStaysUnderTheRoot() {
    // segments drawn from a small alphabet so that '.', '..', '/' and NUL come up often
    Gen<String> seg = strings().betweenCodePoints(0, 127).ofLengthBetween(0, 4);
    Gen<String> weird =
        lists()
            .of(seg.mix(strings().basicLatinAlphabet().ofLengthBetween(0, 3)))
            .ofSizeBetween(1, 5)
            .map(l -> String.join("/", l));
    qt().withExamples(5000)
        .forAll(weird)
        .checkAssert(
            s -> {
              Path p;
              try {
                p = GuestPaths.resolve(ROOT, s);
              } catch (IllegalArgumentException refused) {
                return;
              }
              assertTrue(p.normalize().startsWith(ROOT), s + " -> " + p);
              assertTrue(!p.equals(ROOT), s);
              assertEquals(p, p.normalize(), s);
              assertTrue(!s.contains("\0") && !s.startsWith("/"), s);
            });
  }

  @Test
  void refusesEscapesAndOddNames() {
    for (String bad :
        List.of("", "/abs", "..", "a/../b", "./a", "a//b", "a/", "a\0b", "a/.", "x".repeat(256))) {
      assertThrows(IllegalArgumentException.class, () -> GuestPaths.resolve(ROOT, bad), bad);
    }
    assertEquals(ROOT.resolve("a/b.txt"), GuestPaths.resolve(ROOT, "a/b.txt"));
    assertEquals(ROOT.resolve("..a"), GuestPaths.resolve(ROOT, "..a"));
  }

  @Test
  void limitsAreValidated() {
    assertThrows(IllegalArgumentException.class, () -> new OutputLimits(0, 1, 1));
    assertThrows(IllegalArgumentException.class, () -> new OutputLimits(1, 0, 1));
    assertThrows(IllegalArgumentException.class, () -> new OutputLimits(1, 1, 0));
  }
}
