// chronotier's public API. Everything a user imports comes from here.
export { open, Store } from './store.js';
export type { OpenOptions, RebuildReport, StreamOptions } from './store.js';
export { Stream, StreamReader, EventIterator } from './stream.js';
export { Snapshot } from './snapshot.js';
export { Consumer } from './consumer/consumer.js';
export type { ConsumedEvent, ConsumerOptions, ConsumerStart, SubscribeOptions, Subscription } from './consumer/consumer.js';
export type { AggregateResult, AttributeSummary, ColumnBatch, Event, EventInput, OutOfOrderStats, RangeOptions, StreamStats, Violation } from './stream.js';
export type { AttributeType } from './schema.js';
export type { Timestamp } from './tree/row-layout.js';
export type { DurabilityClass } from './pmem/region.js';
export { BoundsError, CorruptionError, InvariantError, IoError, MisuseError } from './errors.js';
