/**
 * `map` over every item, `size` at a time: a pass over every mailbox of a large deployment
 * keeps a bounded number of Redis commands in flight (they still share writes), where one
 * Promise.all over all of them would hold them all at once. Results in the items' order.
 */
export async function mapInBatches<Item, Result>(items: readonly Item[], size: number, map: (item: Item) => Promise<Result>): Promise<Result[]> {
  const results: Result[] = [];
  for (let start = 0; start < items.length; start += size) results.push(...(await Promise.all(items.slice(start, start + size).map(map))));
  return results;
}
