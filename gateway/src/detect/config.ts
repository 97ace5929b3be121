/**
 * Configuration of the detection module, mounted at `detection` in the gateway config.
 * Every object is strict (an unknown key fails at start-up with its path, like the rest of the config).
 */
import { z } from 'zod';
import { FEATURE_NAMES } from './features.js';

export const detectionConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Score machines for anomalies. When false, readings are not windowed and no anomaly alerts are raised.'),
    windowMs: z
      .number().int().min(1000).max(3_600_000).default(60_000)
      .describe('Length of a feature window in event time (ms). Features (mean, std, ...) are computed per metric per window.'),
    hopMs: z
      .number().int().min(1000).max(3_600_000).default(30_000)
      .describe('A new window starts every hopMs (ms); windowMs / hopMs windows overlap. Windows start at multiples of hopMs since the epoch.'),
    latenessMs: z
      .number().int().min(0).max(3_600_000).default(10_000)
      .describe('How far (ms) behind a machine\'s newest reading an out-of-order reading may arrive and still be scored. Later readings are stored but counted as late and left out of scoring.'),
    minSamplesPerWindow: z
      .number().int().min(1).default(3)
      .describe('Windows with fewer readings are not scored (counted as sparse).'),
    targetSamplesPerWindow: z
      .number().int().min(0).max(1000).default(6)
      .describe('A machine that reports so rarely that a windowMs window would hold fewer readings than this gets windows (and hops) a whole multiple of windowMs (hopMs) long, the smallest that holds this many (within 5 %, so a slightly slow clock does not take the next multiple): measured from the median interval of its first 9 readings, before it starts learning, and kept with its baseline (GET /api/v1/machines/:id/baseline shows windowMs, hopMs, samplingIntervalMs). At most 1 h, and short enough that the baseline period holds baseline.minWindows hops. 0 = every machine uses windowMs and hopMs as they are. Must be 0 or at least minSamplesPerWindow.'),
    holdValues: z
      .boolean().default(true)
      .describe('A machine whose readings each carry only some of its metrics (report by exception: Sparkplug, PLC gateways with a deadband), told from its first 9 readings, gets every reading completed with the last value of the metrics it does not carry, and gaps without readings filled with those values every windowMs / max(targetSamplesPerWindow, minSamplesPerWindow) (10 s by default), for at most 15 min after its last reading. false = windows hold only what was sent (a steady channel is then absent from most windows and left out of the model).'),
    idleCloseMs: z
      .number().int().min(1000).default(120_000)
      .describe('When a machine has sent nothing for this long (gateway clock, ms), its open windows are closed and scored with what they have.'),
    baseline: z
      .strictObject({
        durationMs: z
          .number().int().min(60_000).default(7 * 24 * 3_600_000)
          .describe('Event time (ms) of a machine\'s own first windows used to learn its normal behaviour. Default one week: every shift, break, night and weekend of a weekly production cycle, whatever day the gateway is installed. Include every operating mode you want treated as normal (running, idle, breaks, off); shorten it for a trial or a machine that runs the same around the clock; re-learn with POST /api/v1/machines/:id/baseline/reset.'),
        minWindows: z
          .number().int().min(10).default(60)
          .describe('The baseline also needs at least this many scored windows before it is fitted.'),
        features: z
          .array(z.enum(FEATURE_NAMES)).min(1).default(['mean', 'logstd', 'presence'])
          .describe('Per-metric window features the built-in model uses (a bring-your-own model with a fixed feature order ignores this). Available: mean, std, logstd, min, max, rms, slope, kurtosis, crest, presence.'),
        counters: z
          .boolean().default(true)
          .describe('Model a metric that only counts up during the baseline (parts made, cycles, kWh, operating hours; resets allowed) by its rate (slope) instead of its level, which grows for ever and would keep an anomaly open after any baseline. GET /api/v1/machines/:id/baseline lists them in counters. false = every metric by its level.'),
        maxFeatures: z
          .number().int().min(1).max(1024).default(192)
          .describe('Cap on model features per machine (metrics x features); metrics beyond it (in name order) are not modelled.'),
        maxModes: z
          .number().int().min(1).max(8).default(4)
          .describe('Most operating modes (running, idle, ...) the baseline may split a machine into; chosen per machine by BIC.'),
        minModeWindows: z
          .number().int().min(3).default(12)
          .describe('Fewest baseline windows an operating mode needs.'),
        minShrinkage: z
          .number().min(0.001).max(1).default(0.01)
          .describe('Lower bound on the covariance shrinkage towards independence (Ledoit-Wolf estimate otherwise). Larger = less weight on learnt relationships between channels.'),
        scaleFloorRel: z
          .number().min(0).default(0.002)
          .describe('Smallest standard deviation a feature is given, relative to the metric\'s level, so a channel that never moved during the baseline does not make any later jitter alarming.'),
      })
      .prefault({})
      .describe('Per-machine baseline learning.'),
    threshold: z
      .strictObject({
        quantile: z.number().min(0.5).max(1).default(0.995).describe('Quantile of the machine\'s out-of-sample baseline scores the threshold starts from.'),
        margin: z.number().min(1).default(1.0).describe('Threshold = quantile x margin.'),
        minThreshold: z.number().min(0).default(2).describe('Lowest threshold any machine gets (a healthy score is about 1).'),
        folds: z.number().int().min(2).max(20).default(5).describe('Folds for the out-of-sample baseline scores the threshold is calibrated on.'),
        rareStates: z
          .number().int().min(0).max(1024).default(64)
          .describe('Most "rare states" a baseline keeps: windows of runs in the machine\'s own baseline that would have opened an alert (k of n out-of-sample scores above the threshold, e.g. a weekly cold start). A later window close to one of them is not counted above the threshold. 0 = off.'),
      })
      .prefault({})
      .describe('Per-machine alert threshold, calibrated from the machine\'s own baseline.'),
    policy: z
      .strictObject({
        k: z.number().int().min(1).default(6).describe('An anomaly opens when at least k of the last n windows score above the threshold.'),
        n: z.number().int().min(1).default(10).describe('Size of the k-of-n window history.'),
        clearRatio: z.number().min(0).max(1).default(0.8).describe('Hysteresis: a window counts towards clearing only when its score is below threshold x clearRatio.'),
        clearWindows: z.number().int().min(1).default(20).describe('An open anomaly clears after this many consecutive windows below threshold x clearRatio.'),
        criticalRatio: z.number().min(1).default(4).describe('Severity is critical when the score reaches threshold x criticalRatio, else warning.'),
        updateRatio: z.number().min(1).default(1.5).describe('While open, an update is emitted when the score exceeds the last reported peak x updateRatio (or severity rises).'),
      })
      .prefault({})
      .describe('When scores become an anomaly condition, and when it clears.'),
    drift: z
      .strictObject({
        enabled: z
          .boolean().default(true)
          .describe('Also watch each feature for a small sustained shift (an average over windows of how far it is from what the machine\'s other channels predict): slow wear, a drifting sensor, repeated spikes. Needs a model with a `resid` output (the built-in one has it).'),
        timeConstantMs: z
          .number().int().min(60_000).max(7 * 24 * 3_600_000).default(30 * 60_000)
          .describe('Time constant (ms) of the moving average (at most an eighth of baseline.durationMs is used, so the baseline can calibrate it). Longer = smaller shifts are seen, later.'),
        slowTimeConstantMs: z
          .number().int().min(0).max(7 * 24 * 3_600_000).default(24 * 3_600_000)
          .describe('Time constant (ms) of a second, slow moving average of the same residuals, for offsets that grow over days (a sensor losing its calibration): it averages out the daily cycle of shifts and shop temperature and lags a slow drift by about this much. Capped at an eighth of baseline.durationMs like the fast one (21 h with the default one-week baseline), and off when that leaves it under twice the fast one (a short baseline). 0 = off.'),
        limit: z
          .number().min(1).default(10)
          .describe('A window counts as abnormal when a feature\'s average is more than `limit` times its own baseline spread (in either direction); it then counts towards the same k-of-n rule as the score.'),
        slowLimit: z
          .number().min(1).default(8)
          .describe('The same limit for the slow average (slowTimeConstantMs). Below `limit`: a sensor drifting over days is found earlier at 8 than at 10 (on the simulator\'s choice seeds, median lead 0.46 -> 0.53) for about 0.04 more false alerts per machine-week (models/README.md, "the slow average gets its own limit").'),
        clip: z
          .number().min(0.5).default(3)
          .describe('Each window\'s residual enters the average clipped to +-clip sd, so one odd window (a start-up) moves it little.'),
      })
      .prefault({})
      .describe('Drift statistic beside the window score: per feature, a moving average of the model\'s residual, calibrated on the machine\'s own baseline.'),
    recurrence: z
      .strictObject({
        enabled: z
          .boolean().default(true)
          .describe('Also watch for short far-out events (a spike, a brief stall) that recur more often than in the machine\'s own baseline, which k-of-n alone misses because each lasts only a window or two. Needs a model with a `resid` output (the built-in one has it).'),
        level: z
          .number().min(1).default(5)
          .describe('A window is far out for a feature when its residual (conditional sd: how far it is from what the machine\'s other channels predict) is more than this from the feature\'s recent level; a slot with any far-out window counts.'),
        horizonMs: z
          .number().int().min(60_000).max(7 * 24 * 3_600_000).default(3_600_000)
          .describe('Far-out windows are counted over this much event time (at most an eighth of baseline.durationMs is used, so the baseline can calibrate it).'),
        slots: z
          .number().int().min(2).max(60).default(6)
          .describe('The horizon is cut into this many slots (10 min each by default) and a slot counts once however many far-out windows it holds, so a few minutes of start-up or shut-down flicker count as one. A machine whose slots would be shorter than two windows (a baseline too short for the horizon) gets no recurrence statistic.'),
        falseAlertsPerWeek: z
          .number().positive().max(10).default(0.1)
          .describe('Expected false alerts per machine-week this statistic may add on a machine that behaves like its baseline; sets, per feature, how many slots of a horizon may hold far-out windows and still be normal (binomial tail of the baseline rate, and never fewer than the baseline itself held).'),
      })
      .prefault({})
      .describe('Recurrence statistic beside the window score: per feature, slots of a sliding horizon holding far-out windows against the rate in the machine\'s own baseline.'),
    model: z
      .strictObject({
        manifest: z.string().default('').describe('Path of a model manifest JSON (see models/README.md, "Bring your own model"). Empty = the built-in mahalanobis-v1.'),
        batchIntervalMs: z.number().int().min(10).max(60_000).default(500).describe('Closed windows are collected and scored together every batchIntervalMs (one onnxruntime run for all machines).'),
        maxBatchFloats: z.number().int().min(10_000).default(4_000_000).describe('Largest input (in floats) of one onnxruntime run; bigger batches are split.'),
        maxPendingWindows: z.number().int().min(10).default(50_000).describe('Closed windows waiting to be scored; beyond this the oldest are dropped and counted.'),
      })
      .prefault({})
      .describe('The ONNX scoring model.'),
    contributors: z.number().int().min(1).max(10).default(3).describe('How many top contributing features an anomaly names.'),
    historyDays: z.number().min(0).default(7).describe('Days of window scores kept for GET /api/v1/machines/:id/anomaly (0 = keep none).'),
    maxMachines: z.number().int().min(1).default(5000).describe('Most machines detection tracks; readings of further machines are counted and not scored.'),
  })
  .prefault({})
  .describe('Anomaly detection: event-time windows, per-machine baselines, ONNX scoring, k-of-n alerting.');

export type DetectionConfig = z.infer<typeof detectionConfigSchema>;
