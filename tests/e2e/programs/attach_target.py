"""e2e target for `leakscope attach`: a long-running program that leaks on demand.

Usage: python attach_target.py MODE   (run in the test's working directory)

Prints "ready" once running and "done" at the end, nothing else. While a file `leak.on`
exists the program leaks from the line marked LEAK-<MODE>; a file `stop` ends it. MODE says
what the main thread does meanwhile:
  loop     polls the files every millisecond (sleeping in between)
  spin     runs pure Python flat out, holding the GIL except when the interpreter switches
  sleep    is blocked in time.sleep(); a worker thread leaks; SIGUSR1 ends the sleep
  accept   is blocked in socket.accept(); a worker thread leaks, then connects to end it
  lock     is blocked in Lock.acquire(); a worker thread leaks, then releases the lock
  threads  waits for 4 busy worker threads (allocating and freeing); one of them leaks
  asyncio  runs an asyncio TCP server (port in the file `port`); each request leaks
  ext      once `leak.on` exists, imports the C extension leakext from ./ext
           (a module loaded after the attach) and keeps 2000 malloc blocks of 333 bytes
"""
import os
import signal
import socket
import sys
import threading
import time

keep = []


def leaking():
    return os.path.exists("leak.on")


def stopping():
    return os.path.exists("stop")


def leak_loop():  # worker for the blocked-main modes
    while not stopping():
        if leaking():
            keep.append(bytearray(1500))  # LEAK-WORKER
        time.sleep(0.001)


def main(mode):
    print("ready", flush=True)
    if mode == "loop":
        while not stopping():
            if leaking():
                keep.append(bytearray(1000))  # LEAK-LOOP
            time.sleep(0.001)
    elif mode == "spin":
        i = 0
        while True:
            i += 1
            if i % 2000 == 0:
                if stopping():
                    break
                if leaking():
                    keep.append([i] * 100)  # LEAK-SPIN
    elif mode == "sleep":
        def wake(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGUSR1, wake)

        def worker():
            leak_loop()
            os.kill(os.getpid(), signal.SIGUSR1)
        threading.Thread(target=worker).start()
        try:
            time.sleep(3600)
        except KeyboardInterrupt:
            pass
    elif mode == "accept":
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def worker():
            leak_loop()
            socket.create_connection(("127.0.0.1", port)).close()
        threading.Thread(target=worker).start()
        conn, _ = srv.accept()
        conn.close()
        srv.close()
    elif mode == "lock":
        lock = threading.Lock()
        lock.acquire()

        def worker():
            leak_loop()
            lock.release()
        threading.Thread(target=worker).start()
        lock.acquire()
    elif mode == "threads":
        def churn(n):
            while not stopping():
                for _ in range(200):
                    d = {"k": n, "v": [n] * 10}
                    del d
                if n == 0 and leaking():
                    keep.append(bytearray(1200))  # LEAK-THREADS
                time.sleep(0.001)
        ts = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    elif mode == "asyncio":
        import asyncio

        async def handle(reader, writer):
            data = await reader.readline()
            keep.append(bytearray(len(data) * 100))  # LEAK-ASYNC
            writer.write(b"ok\n")
            await writer.drain()
            writer.close()

        async def serve():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            with open("port.tmp", "w") as f:
                f.write(str(server.sockets[0].getsockname()[1]))
            os.rename("port.tmp", "port")
            while not stopping():
                await asyncio.sleep(0.01)
            server.close()
            await server.wait_closed()
        asyncio.run(serve())
    elif mode == "ext":
        while not leaking():
            time.sleep(0.001)
        sys.path.insert(0, os.path.join(os.getcwd(), "ext"))
        import leakext
        leakext.malloc_leak(2000, 333)  # LEAK-EXT
        while not stopping():
            time.sleep(0.001)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
