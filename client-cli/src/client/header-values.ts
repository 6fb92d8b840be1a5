/** Whether a value can go out as a MESH header: HTTP carries Latin-1 text, on one line. */
export function fitsHeader(value: string): boolean {
  return /^[\x20-\x7e\xa0-\xff]+$/.test(value);
}
