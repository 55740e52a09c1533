package dev.agentvm.cli;

import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The guest image cache. */
@Command(
    name = "image",
    mixinStandardHelpOptions = true,
    description = "The guest image cache.",
    subcommands = {ImageCommand.Build.class, CommandLine.HelpCommand.class})
final class ImageCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** Builds (or finds) the micro image, with a package disk if packages are named. */
  @Command(
      name = "build",
      mixinStandardHelpOptions = true,
      description =
          "Build the guest image from Debian packages (or find it cached), with a progress bar;"
              + " --packages adds a read-only /usr disk with those packages.")
  static final class Build implements Callable<Integer> {
    @Option(
        names = "--packages",
        split = ",",
        paramLabel = "PKG",
        description = "Debian packages for the /usr disk, e.g. python3,git")
    List<String> packages = new ArrayList<>();

    @Option(
        names = "--cache",
        description = "cache directory (default: $AGENTVM_CACHE_DIR or ${DEFAULT-VALUE})")
    Path cache = MicroImageBuilder.defaultCacheRoot();

    @Option(names = "--json", description = "print JSON instead of text")
    boolean json;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    /** Whether standard error is a terminal (a bar redrawn in place); tests set it. */
    boolean terminal = ProgressBar.stderrIsTerminal();

    @Override
    public Integer call() throws IOException {
      for (String p : packages) {
        if (!p.matches("[a-z0-9][a-z0-9+.-]{0,99}")) {
          spec.commandLine().getErr().println("not a Debian package name: " + p);
          return 2;
        }
      }
      ProgressBar bar = new ProgressBar(spec.commandLine().getErr(), terminal);
      long t0 = System.nanoTime();
      MicroImage image;
      try {
        image =
            MicroImageBuilder.create().cacheRoot(cache).packages(packages).progress(bar).build();
      } finally {
        bar.end();
      }
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("directory", image.directory().toString());
      m.put("kernel", image.kernel().toString());
      m.put("initramfs", image.initramfs().toString());
      m.put("kernelRelease", image.kernelRelease());
      m.put("sizeBytes", image.sizeBytes());
      image.packageDiskIfAny().ifPresent(d -> m.put("packageDisk", d.toString()));
      m.put("packages", image.packages());
      m.put("seconds", Math.round((System.nanoTime() - t0) / 1e8) / 10.0);
      PrintWriter out = spec.commandLine().getOut();
      if (json) {
        Options.printJson(out, m);
      } else {
        out.printf(
            "image %s (kernel %s, %.1f MB)%n",
            image.directory(), image.kernelRelease(), image.sizeBytes() / 1e6);
        image
            .packageDiskIfAny()
            .ifPresent(
                d -> {
                  try {
                    out.printf(
                        "package disk %s (%s, %.1f MB)%n",
                        d, String.join(" ", image.packages()), Files.size(d) / 1e6);
                  } catch (IOException e) {
                    out.printf("package disk %s (%s)%n", d, String.join(" ", image.packages()));
                  }
                });
        out.flush();
      }
      return 0;
    }
  }
}
