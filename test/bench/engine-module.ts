// The module both engine benches load: THINGS things of a 10-property
// template (`on-change` numbers) and 3 rules (alert raise/clear, event,
// publish), so bench:engine and engine-process.ts measure the same work.

export function benchModule (things: number): { version: 1, templates: object[], things: object[], rules: object[] } {
  const props: Record<string, unknown> = {}
  for (let i = 0; i < 10; i++) props[`p${i}`] = { type: 'number', min: -1e9, max: 1e9, change: 'on-change' }
  return {
    version: 1,
    templates: [{ id: 'Sensor', properties: props }],
    things: Array.from({ length: things }, (_, i) => ({ id: `s${i}`, template: 'Sensor' })),
    rules: [
      { id: 'high', template: 'Sensor', when: 'p0 > 900', actions: [{ type: 'raiseAlert', alert: 'high', severity: 'warning' }], resetActions: [{ type: 'clearAlert', alert: 'high' }] },
      { id: 'cross', template: 'Sensor', when: 'p1 > p2', actions: [{ type: 'emitEvent', event: 'cross', payload: { p1: '${p1}' } }] },
      { id: 'sum', template: 'Sensor', when: 'p3 + p4 > 1500', actions: [{ type: 'publish', topic: 'alarms/${thing.id}', payload: { sum: '${p3 + p4}' } }] },
    ],
  }
}
