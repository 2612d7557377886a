import t from 'tap'
import { badTokens, bearer, testToken } from '@platform/kit/testing'
import { build } from './helper.js'

t.test('bad bodies are refused with a code and write nothing', async (t) => {
  const { app, schema } = await build(t)
  const h = bearer(testToken('u1'))
  const post = (payload: string, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/api/v1/sessions', headers: { ...h, 'content-type': contentType }, payload })

  const cases: Array<[string, string, number, string, string?]> = [
    ['wrong type', '{"title": 5}', 400, 'VALIDATION_ERROR', 'body/title: must be string'],
    ['missing field', '{}', 400, 'VALIDATION_ERROR'],
    ['unknown field', '{"title": "a", "active": false}', 400, 'VALIDATION_ERROR'],
    ['null body', 'null', 400, 'VALIDATION_ERROR'],
    ['array body', '["a"]', 400, 'VALIDATION_ERROR'],
    ['broken JSON', '{"title": ', 400, 'INVALID_JSON', 'The body is not valid JSON'],
    ['blank title', '{"title": "   "}', 422, 'INVALID_TITLE', 'The title is blank: give 1 to 200 visible characters'],
    ['empty title', '{"title": ""}', 422, 'INVALID_TITLE'],
    ['overlong title', JSON.stringify({ title: 'x'.repeat(201) }), 422, 'INVALID_TITLE', 'The title has 201 characters; at most 200 are allowed'],
    ['control character', JSON.stringify({ title: 'a\u0007b' }), 422, 'INVALID_TITLE', 'The title contains control characters'],
    ['huge title', JSON.stringify({ title: 'x'.repeat(1001) }), 400, 'VALIDATION_ERROR']
  ]
  for (const [name, payload, status, code, message] of cases) {
    const res = await post(payload)
    t.equal(res.statusCode, status, `${name}: status`)
    t.equal(res.json().code, code, `${name}: code`)
    if (message) t.equal(res.json().message, message, `${name}: message`)
    t.type(res.json().requestId, 'string')
  }
  const form = await post('title=a', 'application/x-www-form-urlencoded')
  t.equal(form.statusCode, 415)
  t.equal(form.json().code, 'UNSUPPORTED_MEDIA_TYPE')

  const exactly200 = await post(JSON.stringify({ title: 'é'.repeat(200) }))
  t.equal(exactly200.statusCode, 201, '200 characters (not bytes) is the limit')

  const { rows } = await schema.query('SELECT count(*)::int AS n FROM named_sessions')
  t.equal(rows[0]!.n, 1, 'only the valid create wrote anything')
  const { rows: events } = await schema.query('SELECT count(*)::int AS n FROM outbox')
  t.equal(events[0]!.n, 1)
})

t.test('path titles follow the same rules', async (t) => {
  const { app } = await build(t)
  const h = bearer(testToken('u1'))
  const blank = await app.inject({ method: 'POST', url: '/api/v1/sessions/active/%20%20', headers: h })
  t.equal(blank.statusCode, 422)
  t.equal(blank.json().code, 'INVALID_TITLE')
  const ctl = await app.inject({ method: 'DELETE', url: '/api/v1/sessions/a%01b', headers: h })
  t.equal(ctl.statusCode, 422)
  t.equal(ctl.json().code, 'INVALID_TITLE')
})

t.test('bad tokens are refused with their codes', async (t) => {
  const { app } = await build(t)
  const get = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/api/v1/sessions', headers })

  const none = await get({})
  t.equal(none.statusCode, 401)
  t.same(Object.keys(none.json()).sort(), ['code', 'error', 'message', 'requestId'])
  t.equal(none.json().code, 'TOKEN_MISSING')
  t.equal(none.json().error, 'Unauthorized')

  const cases: Array<[string, string, string]> = [
    ['expired', badTokens.expired(), 'TOKEN_EXPIRED'],
    ['wrong secret', badTokens.wrongSecret(), 'TOKEN_INVALID'],
    ['alg none', badTokens.algNone(), 'TOKEN_INVALID'],
    ['missing sub', badTokens.missingSub(), 'TOKEN_INVALID'],
    ['malformed', badTokens.malformed(), 'TOKEN_INVALID']
  ]
  for (const [name, token, code] of cases) {
    const res = await get(bearer(token))
    t.equal(res.statusCode, 401, `${name}: 401`)
    t.equal(res.json().code, code, `${name}: ${code}`)
  }
  const basic = await get({ authorization: 'Basic dXNlcjpwYXNz' })
  t.equal(basic.statusCode, 401)
  t.equal(basic.json().code, 'TOKEN_INVALID')
  t.equal(basic.json().message, 'The token is not valid: the Authorization header must be "Bearer <JWT>"')
  const sub = await get(bearer(badTokens.missingSub()))
  t.equal(sub.json().message, 'The token is not valid: the sub claim is missing')
})

t.test('an unknown route answers 404 NOT_FOUND in the error shape', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/nothing?x=1', headers: { 'x-request-id': 'req-123' } })
  t.equal(res.statusCode, 404)
  t.same(res.json(), { error: 'Not Found', message: 'No route GET /api/v1/nothing', code: 'NOT_FOUND', requestId: 'req-123' })
  t.equal(res.headers['x-request-id'], 'req-123')
})
