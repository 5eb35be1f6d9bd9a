/** The roles an account can have; the users table's enum takes its values from here. */
export const ROLES = ['user', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: decided from the access token by the HTTP layer, checked by services. */
export interface Actor {
  userId: string;
  role: Role;
}
