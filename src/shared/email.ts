/** The one spelling of an address that accounts are stored, looked up and rate-limited under. */
export const normaliseEmail = (email: string) => email.trim().toLowerCase();
