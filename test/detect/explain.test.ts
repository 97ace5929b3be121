import { describe, expect, it } from 'vitest';
import type { ModelParams } from '../../gateway/src/detect/baseline.js';
import { explain } from '../../gateway/src/detect/explain.js';
import { featureKey } from '../../gateway/src/detect/features.js';

describe('contributors in plain words', () => {
  // Two mean features with identity precision: contributions are z^2, hand-computable.
  const p: ModelParams = {
    featureKeys: [featureKey('vibration_rms_mm_s', 'mean'), featureKey('bearing_temp_c', 'mean')],
    center: [2, 60],
    scale: [0.1, 1],
    modes: [{ center: [2, 60], scale: [0.1, 1], precision: [0.5, 0, 0, 0.5], windows: 100 }],
  };

  it('reports the real deviation even beyond the scoring clip, largest first', () => {
    // vibration +25 sd, temperature +12 sd: both beyond a clip of 10, and told apart in the text.
    const x = Float64Array.from([4.5, 72]);
    const c = explain(x, p, null, 0, 10, 2);
    expect(c.map((k) => k.text)).toEqual(['vibration_rms_mm_s mean 4.50 vs baseline 2.00 (+25.0 sd)', 'bearing_temp_c mean 72.0 vs baseline 60.0 (+12.0 sd)']);
    expect(c.map((k) => k.ratio)).toEqual([25, 12]);
  });

  it('says lower for a drop', () => {
    const c = explain(Float64Array.from([2, 55]), p, null, 0, 10, 1);
    expect(c[0]?.text).toBe('bearing_temp_c mean 55.0 vs baseline 60.0 (-5.00 sd)');
  });
});
