import { createSigner } from 'fast-jwt'
import { signToken, type TokenClaims } from '../token.js'

export const TEST_JWT_SECRET = 'test-secret-0123456789abcdef0123456789'

/** A valid HS256 token signed with the test secret. */
export function testToken(sub: string, roles: string[] = ['user'], extra: Omit<TokenClaims, 'sub'> = {}): string {
  return signToken({ sub, roles, ...extra }, { secret: TEST_JWT_SECRET })
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** Tokens that must be refused, one per way a token can be bad. */
export const badTokens = {
  expired: () => signToken({ sub: 'u1', roles: ['user'], ttlSeconds: -60 }, { secret: TEST_JWT_SECRET }),
  wrongSecret: () => signToken({ sub: 'u1', roles: ['user'] }, { secret: 'another-secret-0123456789abcdef' }),
  algNone: () => createSigner({ algorithm: 'none' })({ sub: 'u1', roles: ['user'] }),
  missingSub: () => createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS256', expiresIn: 60_000 })({ roles: ['user'] }),
  malformed: () => 'not.a.jwt'
}
