package dev.agentvm.image;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Resolves kernel modules and their dependencies from {@code modules.dep} into a load order in
 * which every module comes after all the modules it depends on.
 */
final class KernelModules {
  /** Module path (relative to /lib/modules/RELEASE) to the paths it depends on. */
  private final Map<String, List<String>> deps = new HashMap<>();

  /** Module name (file name without .ko[.xz|.zst|.gz], dashes as underscores) to its path. */
  private final Map<String, String> byName = new HashMap<>();

  private final Set<String> builtin;

  KernelModules(String modulesDep, Set<String> builtinNames) {
    this.builtin = builtinNames;
    for (String line : modulesDep.split("\n", -1)) {
      int colon = line.indexOf(':');
      if (colon <= 0) {
        continue;
      }
      String path = line.substring(0, colon).trim();
      List<String> d = new ArrayList<>();
      for (String s : line.substring(colon + 1).trim().split("\\s+", -1)) {
        if (!s.isEmpty()) {
          d.add(s);
        }
      }
      deps.put(path, d);
      byName.put(nameOf(path), path);
    }
  }

  static String nameOf(String path) {
    String f = path.substring(path.lastIndexOf('/') + 1);
    int ko = f.indexOf(".ko");
    return (ko > 0 ? f.substring(0, ko) : f).replace('-', '_');
  }

  /** Parses {@code modules.builtin} (paths) into module names. */
  static Set<String> builtinNames(String modulesBuiltin) {
    Set<String> names = new HashSet<>();
    for (String line : modulesBuiltin.split("\n", -1)) {
      if (!line.isBlank()) {
        names.add(nameOf(line.trim()));
      }
    }
    return names;
  }

  /**
   * The module files to load, dependencies first. Built-in modules are skipped.
   *
   * @throws IllegalArgumentException if a module is neither a loadable module nor built in
   */
  List<String> loadOrder(List<String> wanted) {
    Set<String> order = new LinkedHashSet<>(); // insertion order is the load order
    for (String w : wanted) {
      String name = w.replace('-', '_');
      if (builtin.contains(name)) {
        continue;
      }
      String path = byName.get(name);
      if (path == null) {
        throw new IllegalArgumentException(
            "kernel module " + w + " is neither in modules.dep nor built in");
      }
      visit(path, order, new HashSet<>());
    }
    return new ArrayList<>(order);
  }

  private void visit(String path, Set<String> order, Set<String> onStack) {
    if (order.contains(path)) {
      return;
    }
    if (!onStack.add(path)) {
      throw new IllegalArgumentException("dependency cycle through " + path);
    }
    for (String d : deps.getOrDefault(path, List.of())) {
      visit(d, order, onStack);
    }
    onStack.remove(path);
    order.add(path);
  }
}
