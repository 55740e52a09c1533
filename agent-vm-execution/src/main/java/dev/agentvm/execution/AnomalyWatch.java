package dev.agentvm.execution;

import dev.agentvm.core.agent.ExecResult;

/** Feeds an execution's submission, samples and end to the {@link AnomalyDetector}. */
final class AnomalyWatch implements ExecutionObserver {
  private final AnomalyDetector detector;

  AnomalyWatch(AnomalyDetector detector) {
    this.detector = detector;
  }

  @Override
  public void submitted(Run run) {
    run.raise(detector.onSubmit(run.request().id(), System.nanoTime()));
  }

  @Override
  public void sampled(Run run, AnomalyDetector.Sample sample) {
    run.raise(detector.onSample(run.request().id(), run.vm(), sample));
  }

  @Override
  public void execFinished(
      Run run,
      ExecResult r,
      AnomalyDetector.Finished host,
      long peakGuestMemKiB,
      double peakGuestLoad) {
    run.raise(
        detector.onCompleted(run.request().id(), run.vm(), host, peakGuestMemKiB, peakGuestLoad));
  }
}
