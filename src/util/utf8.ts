// One encoder and decoder per process: constructing a TextDecoder costs tens of microseconds,
// which open() would otherwise pay per stored name.

export const utf8Encoder = new TextEncoder();
export const utf8Decoder = new TextDecoder();
/** Refuses malformed UTF-8 instead of replacing it (a damaged catalog must not parse). */
export const strictUtf8Decoder = new TextDecoder('utf-8', { fatal: true });
