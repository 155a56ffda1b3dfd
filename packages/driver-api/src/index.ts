/**
 * `@iommufd/driver-api`: the stable, versioned driver contract: driver ops, the core structs drivers see, driver helpers and the type-level STRUCT_SIZE checks.
 *
 * @packageDocumentation
 */
export {};
