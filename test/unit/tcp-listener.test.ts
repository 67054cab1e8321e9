import t from 'tap'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createTcpListener } from '../../broker/listeners/tcp.ts'
import { setConnInfo, type ConnInfo } from '../../broker/listeners/conn-info.ts'
import type { ListenerContext } from '../../broker/listeners/context.ts'
import { waitFor } from '../helpers/wait.ts'

t.test('an accepted socket keeps no cached peer name, and its gate slot is released under the address it was admitted with', async (t) => {
  const admitted: string[] = []
  const released: string[] = []
  const accepted: Array<{ conn: Duplex, info: ConnInfo }> = []
  const ctx = {
    gate: { release: (a: string) => { released.push(a) } },
    admit: (address: string) => { admitted.push(address); return true },
    accept: (conn: Duplex, info: ConnInfo) => { setConnInfo(conn, info); accepted.push({ conn, info }) },
  } as unknown as ListenerContext
  const server = createTcpListener(ctx)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await waitFor(() => accepted.length === 1, 'the accept')
  const socket = accepted[0].conn as Socket
  t.same(admitted, ['127.0.0.1'], 'admitted by its address')
  t.equal(accepted[0].info.address, '127.0.0.1', 'the ConnInfo has it')
  // socket.remoteAddress would have cached a { address, family, port } object for the socket's lifetime.
  t.notOk(Object.hasOwn(socket, '_peername'), 'no cached peer name on an idle connection')
  client.destroy()
  await waitFor(() => released.length === 1, 'the release')
  t.same(released, ['127.0.0.1'], 'released under the admitted address')
})
