/** The last second written, and how: a server writes the same second for every message id made in it. */
let lastSecond = Number.NaN;
let lastWritten = '';

/** MESH writes UTC times as compact digits: `yyyyMMddHHmmss` (status) or its first 12 (tokens). */
export function compactUtcSeconds(at: Date): string {
  const second = Math.floor(at.getTime() / 1000);
  if (second !== lastSecond) {
    lastWritten = at.toISOString().replace(/\D/g, '').slice(0, 14);
    lastSecond = second;
  }
  return lastWritten;
}

/** MESH's compact time, `yyyyMMddHHmmss`. */
const COMPACT_TIME = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/;

/** An ISO 8601 date and time, its seconds, fraction and zone optional (a `T` or a space between). */
const ISO_TIME = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?(Z|[+-]\d\d(?::?\d\d)?)?$/i;

/**
 * A time as a MESH server writes it. MESH's times are UTC without saying so: compact
 * `yyyyMMddHHmmss` (v1 tracking, and v2's `expiry_time` and `upload_timestamp` in the
 * specification's example) or ISO 8601 with no zone (v2's `status_timestamp`, `2020-06-01T12:21:52`;
 * the sandbox's, from Python, to the microsecond); a time with a zone (meshbox's `…Z`) is read
 * in it. Undefined for text that is none of these, or no real time (a 13th month, a 25th hour).
 */
export function readMeshTime(text: string): Date | undefined {
  const parts = COMPACT_TIME.exec(text) ?? ISO_TIME.exec(text);
  if (!parts) return undefined;
  const [year, month, day, hour, minute, second = '00', fraction = '', zone = 'Z'] = parts.slice(1) as string[];
  const utc = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second), Number(fraction.slice(0, 3).padEnd(3, '0')));
  // Date.UTC carries what is out of range into the next field: a time that does not read back is none.
  if (Number.isNaN(utc) || compactUtcSeconds(new Date(utc)) !== `${year}${month}${day}${hour}${minute}${second}`) return undefined;
  const offset = zoneOffsetMs(zone);
  return offset === undefined ? undefined : new Date(utc - offset);
}

/** How far ahead of UTC a zone (`Z`, `+01`, `-0530`, `+05:30`) is; undefined for none there is (past ±14:00, or 60 minutes and more). */
function zoneOffsetMs(zone: string): number | undefined {
  if (zone.toUpperCase() === 'Z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const [hours, minutesPast] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || '0')];
  if (hours > 14 || minutesPast > 59) return undefined;
  const minutes = hours * 60 + minutesPast;
  return (zone.startsWith('-') ? -minutes : minutes) * 60_000;
}
