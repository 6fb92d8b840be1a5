import { randomBytes } from 'node:crypto';

const SERIAL_NUMBER_BYTES = 16;

/**
 * 16 random bytes as lower-case hex, for a certificate's serial number. The first byte is kept in
 * 0x01..0x7f: a leading 1 bit would make the DER INTEGER negative, and a leading zero byte would be
 * non-minimal DER, which OpenSSL refuses to parse (node-forge writes the hex bytes as they are).
 */
export function randomSerialNumber(): string {
  const bytes = randomBytes(SERIAL_NUMBER_BYTES);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

/**
 * A serial number in the one spelling meshbox compares and stores: lower-case hex without
 * separators or leading zero bytes. Accepts what people paste: `0A:1B:...`, upper case,
 * Node's `X509Certificate.serialNumber`, OpenSSL's `serial=` output.
 */
export function normalizeSerialNumber(serialNumber: string): string {
  const hex = serialNumber.replace(/[\s:]/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) throw new Error(`not a hexadecimal serial number: ${JSON.stringify(serialNumber)}`);
  const even = hex.length % 2 === 0 ? hex : `0${hex}`;
  const withoutLeadingZeroBytes = even.replace(/^(00)+/, '');
  return withoutLeadingZeroBytes === '' ? '00' : withoutLeadingZeroBytes;
}
