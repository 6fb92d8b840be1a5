/**
 * `target` with some of its methods replaced, for a test that stages a race (a stale read, a
 * stop at a chosen moment). Every other property is the target's own, its methods bound to
 * it: they use private fields, which a proxy as `this` would not have.
 */
export function overriding<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get: (object, property) => {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof T];
      const value: unknown = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
