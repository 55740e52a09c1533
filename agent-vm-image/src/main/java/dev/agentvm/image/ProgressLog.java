package dev.agentvm.image;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link Progress#toLog()}: each step an INFO line of the logger {@code
 * dev.agentvm.image.Progress}.
 */
final class ProgressLog implements Progress {
  static final Logger LOG = LoggerFactory.getLogger(Progress.class);
  static final ProgressLog INSTANCE = new ProgressLog();

  private ProgressLog() {}

  @Override
  public void step(Step s) {
    LOG.info("{}", s);
  }
}
