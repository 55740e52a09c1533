package dev.agentvm.examples;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.io.IOException;
import java.util.UUID;

/** The micro image as a template, for the examples. */
final class Images {
  private Images() {}

  static VMTemplate microTemplate(String what) throws IOException {
    MicroImage image = MicroImageBuilder.create().build();
    return VMTemplate.builder(
            "agentvm-" + what + "-" + UUID.randomUUID().toString().substring(0, 8))
        .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
        .build();
  }
}
