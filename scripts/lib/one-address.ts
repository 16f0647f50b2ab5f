/**
 * A benchmark's load comes from one address (loopback), where real clients come
 * from many: the per-address connection limits are off for relay processes under load.
 */
export const ONE_ADDRESS_LOAD = { RELAY_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '0', RELAY_RTMP_MAX_CONNECTIONS_PER_ADDRESS: '0' } as const;
