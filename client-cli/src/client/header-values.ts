/**
 * A value as it goes out as a MESH header, and as the server keeps it and tracking reports it:
 * HTTP carries Latin-1 text on one line, and takes a value without the spaces around it (a field
 * padded to a width, as lab systems write them, arrives unpadded). Undefined when it cannot go,
 * or is only spaces.
 */
export function headerValue(value: string): string | undefined {
  const unpadded = value.trim();
  return /^[\x20-\x7e\xa0-\xff]+$/.test(unpadded) ? unpadded : undefined;
}
