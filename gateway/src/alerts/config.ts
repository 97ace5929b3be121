/**
 * Config section `alerts` (mounted at `alerts` in the main config schema).
 * Every field has a default and a description: the README config reference is generated from it.
 */
import { z } from 'zod';
import { NAME_PATTERN } from '../contract/reading.js';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export const severitySchema = z.enum(SEVERITIES);

/** Rank used for "at least this severity" comparisons and escalation. */
export function severityRank(s: (typeof SEVERITIES)[number]): number {
  return SEVERITIES.indexOf(s);
}

const nameSchema = z.string().regex(NAME_PATTERN, 'must match [A-Za-z0-9_.-]{1,64}');

export const limitRuleSchema = z
  .object({
    machine: nameSchema
      .optional()
      .describe('Machine id this rule applies to. A machine-specific rule for a metric replaces kind-level and global rules for that metric on that machine.'),
    kind: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe('Machine kind (from the `machines` registry) this rule applies to. Omit both `machine` and `kind` to apply the rule to every machine.'),
    metric: nameSchema.describe('Metric name exactly as the machine publishes it, e.g. `spindle_temp_c`.'),
    min: z.number().finite().optional().describe('Lowest allowed value; a reading below it violates the rule. Give `min`, `max` or both.'),
    max: z.number().finite().optional().describe('Highest allowed value; a reading above it violates the rule. Give `min`, `max` or both.'),
    forMs: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('How long (event time, ms) every reading of the metric must stay outside the limit before an alert opens; 0 opens on the first violating reading.'),
    deadbandAbs: z
      .number()
      .finite()
      .min(0)
      .default(0)
      .describe('Hysteresis: once violated, the value must come back inside the limit by this margin (same unit as the metric) before the alert clears, so a value hovering at the limit does not flap.'),
    severity: severitySchema.default('warning').describe('Severity of the alert this rule raises: info, warning or critical.'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.min === undefined && r.max === undefined) {
      ctx.addIssue({ code: 'custom', message: `limit rule for metric "${r.metric}" needs \`min\`, \`max\` or both`, path: ['min'] });
    }
    if (r.min !== undefined && r.max !== undefined && r.min >= r.max) {
      ctx.addIssue({ code: 'custom', message: `limit rule for metric "${r.metric}": min (${r.min}) must be below max (${r.max})`, path: ['min'] });
    }
  })
  .describe('A static limit on one metric.');
export type LimitRule = z.output<typeof limitRuleSchema>;

export const webhookSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}')
      .optional()
      .describe('Short name used in logs and as the `webhook` label of metrics; defaults to `webhook<N>` (its position, from 0).'),
    url: z.url({ protocol: /^https?$/ }).describe('URL the alert transition is POSTed to as JSON (http or https).'),
    headers: z
      .record(z.string().min(1), z.string())
      .default({})
      .describe('Extra HTTP headers, e.g. `{ "Authorization": "Bearer ..." }`.'),
    minSeverity: severitySchema.default('warning').describe('Only alerts of at least this severity are sent.'),
    events: z
      .array(z.enum(['opened', 'updated', 'acknowledged', 'resolved']))
      .min(1)
      .default(['opened', 'acknowledged', 'resolved'])
      .describe('Which transitions are sent. `updated` (peak rises, at most once per updateNotifyIntervalMs) is left out by default so a chat channel is not paged every minute while a score climbs.'),
    escalations: z
      .boolean()
      .default(true)
      .describe('Also send `updated` when an alert\'s severity rises (e.g. warning -> critical), even if `updated` is not in `events`.'),
    timeoutMs: z.number().int().min(100).max(120_000).default(5000).describe('Timeout of one delivery attempt, ms.'),
    maxAttempts: z.number().int().min(1).max(20).default(6).describe('Attempts per transition (first try included) before it is dropped and counted.'),
    initialBackoffMs: z.number().int().min(1).default(1000).describe('Delay before the first retry, ms; doubles on each further retry (with jitter).'),
    maxBackoffMs: z.number().int().min(1).default(60_000).describe('Upper bound of the delay between retries, ms.'),
    queueSize: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(1000)
      .describe('Transitions waiting for this webhook; when full the oldest waiting one is dropped (counted and logged) so the latest state gets through.'),
  })
  .strict()
  .describe('A webhook receiving alert transitions.');
export type WebhookConfig = z.output<typeof webhookSchema>;

export const alertsConfigSchema = z
  .object({
    limits: z
      .array(limitRuleSchema)
      .default([])
      .describe('Static limit rules per metric (per machine, per machine kind, or global). All violated limits of a machine share its one `limit` alert.'),
    silenceAfterMs: z
      .number()
      .int()
      .min(0)
      .default(300_000)
      .describe('A machine that has sent readings before and then sends nothing for this long (ms, gateway clock) gets a `silence` alert; 0 disables the rule.'),
    silenceSeverity: severitySchema.default('warning').describe('Severity of silence alerts.'),
    updateNotifyIntervalMs: z
      .number()
      .int()
      .min(0)
      .default(60_000)
      .describe('An open alert whose peak score rises is re-published (event `updated`) at most once per this interval (ms); a severity escalation is published at once.'),
    topContributors: z.number().int().min(1).max(20).default(5).describe('How many contributors (metric and feature, in words) an alert keeps.'),
    retentionDays: z
      .number()
      .int()
      .min(1)
      .default(365)
      .describe('Resolved alerts older than this (days since resolution) are deleted from the alert store.'),
    webhooks: z.array(webhookSchema).default([]).describe('Webhooks that receive every alert transition (JSON POST, retried with back-off).'),
    stream: z
      .object({
        maxClients: z.number().int().min(1).max(1000).default(16).describe('Concurrent `GET /api/v1/alerts/stream` clients; more are refused with 503.'),
        heartbeatMs: z.number().int().min(1000).default(15_000).describe('Interval of the SSE heartbeat comment that keeps proxies from closing an idle stream, ms.'),
        replay: z
          .number().int().min(0).max(100_000).default(1000)
          .describe('Recent transitions kept in memory for clients that reconnect with `Last-Event-ID`: they get what they missed, or an event `gap` (re-read `GET /api/v1/alerts`) when it is older than these. 0 = none kept: a reconnect after any new transition gets `gap`.'),
      })
      .strict()
      .prefault({})
      .describe('Server-sent events stream of alert transitions.'),
  })
  .strict()
  .prefault({})
  .describe('Alerts: lifecycle, static limit and silence rules, notifications (MQTT, InfluxDB, webhooks).');

export type AlertsConfig = z.output<typeof alertsConfigSchema>;
export type AlertsConfigInput = z.input<typeof alertsConfigSchema>;
