/**
 * `@iommufd/core`: the iommufd core: object table, every ioctl with the kernel's checks and errno order, IOAS, HWPT, vIOMMU, vDEVICE, HW_QUEUE, vEVENTQ and FAULT.
 *
 * @packageDocumentation
 */
export {};
