/** Who is calling: decided from the access token by the HTTP layer, checked by services. */
export type Role = 'user' | 'admin';
export interface Actor {
  userId: string;
  role: Role;
}
