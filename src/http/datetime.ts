import { Type } from 'typebox';

/** A timestamp in a response: services hand over Date objects, the serializer writes RFC 3339. */
export const DateTime = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' });
