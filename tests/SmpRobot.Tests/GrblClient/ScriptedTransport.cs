using System.Text;
using System.Threading.Channels;
using SmpRobot.Controller.Gantry;

namespace SmpRobot.Tests.GrblClient;

/// <summary>
/// A scripted, stateful stand-in for the firmware end of the link: records every write (and
/// models grbl's receive buffer by character counting), and lets a test push firmware output,
/// end the stream, or make reads fail.
/// </summary>
internal sealed class ScriptedTransport : IGantryTransport
{
    private readonly Channel<object> _incoming = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _gate = new();
    private readonly List<byte> _written = [];
    private readonly List<byte[]> _writes = [];
    private readonly List<(Func<ScriptedTransport, bool> Condition, TaskCompletionSource Signal)> _waiters = [];
    // Byte counts of lines the modelled firmware buffer holds, oldest first.
    private readonly Queue<int> _bufferedLines = new();
    private ReadOnlyMemory<byte> _leftover;
    private TaskCompletionSource? _writeGate;
    private TaskCompletionSource? _heldWrite;
    private int _partialLineBytes;

    public string Description => "scripted";

    public int OpenCount { get; private set; }

    public bool IsDisposed { get; private set; }

    /// <summary>Largest number of line bytes (newline included) that were ever unacknowledged.</summary>
    public int MaxBufferedBytes { get; private set; }

    public int BufferedBytes { get; private set; }

    public int CompleteLinesWritten { get; private set; }

    public Task OpenAsync(CancellationToken cancellationToken)
    {
        OpenCount++;
        return Task.CompletedTask;
    }

    /// <summary>While set, writes are held (not recorded) until <see cref="ReleaseWrites"/>: a slow link.</summary>
    public void HoldWrites()
    {
        lock (_gate)
        {
            _writeGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _heldWrite = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <summary>Completes when a write is being held by <see cref="HoldWrites"/>.</summary>
    public Task WriteHeld()
    {
        lock (_gate)
        {
            return (_heldWrite ?? throw new InvalidOperationException("HoldWrites first")).Task.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    public void ReleaseWrites()
    {
        TaskCompletionSource? gate;
        lock (_gate)
        {
            gate = _writeGate;
            _writeGate = null;
            _heldWrite = null;
        }

        gate?.TrySetResult();
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Task? hold;
        lock (_gate)
        {
            hold = _writeGate?.Task;
            _heldWrite?.TrySetResult();
        }

        if (hold is not null)
        {
            await hold.WaitAsync(cancellationToken);
        }

        List<TaskCompletionSource> ready = [];
        lock (_gate)
        {
            var copy = data.ToArray();
            _writes.Add(copy);
            _written.AddRange(copy);
            foreach (var b in copy)
            {
                if (GrblProtocol.IsRealtimeByte(b))
                {
                    continue; // grbl picks real-time bytes out; they never use buffer space.
                }

                _partialLineBytes++;
                BufferedBytes++;
                MaxBufferedBytes = Math.Max(MaxBufferedBytes, BufferedBytes);
                if (b == (byte)'\n')
                {
                    _bufferedLines.Enqueue(_partialLineBytes);
                    _partialLineBytes = 0;
                    CompleteLinesWritten++;
                }
            }

            CollectReady(ready);
        }

        foreach (var signal in ready)
        {
            signal.TrySetResult();
        }
    }

    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_leftover.IsEmpty)
        {
            if (!await _incoming.Reader.WaitToReadAsync(cancellationToken))
            {
                return 0;
            }

            var item = await _incoming.Reader.ReadAsync(cancellationToken);
            if (item is Exception ex)
            {
                throw ex;
            }

            _leftover = (byte[])item;
        }

        int count = Math.Min(buffer.Length, _leftover.Length);
        _leftover[..count].CopyTo(buffer);
        _leftover = _leftover[count..];
        return count;
    }

    public ValueTask DisposeAsync()
    {
        IsDisposed = true;
        _incoming.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    /// <summary>Pushes raw firmware output (split however the test likes).</summary>
    public void Push(string text) => _incoming.Writer.TryWrite(Encoding.Latin1.GetBytes(text));

    /// <summary>Pushes one line the way grbl ends it (CR LF).</summary>
    public void PushLine(string line) => Push(line + "\r\n");

    /// <summary>Acknowledges the oldest buffered line in the buffer model and pushes "ok".</summary>
    public void PushOk() => PushAck("ok");

    /// <summary>Acknowledges the oldest buffered line in the buffer model and pushes "error:N".</summary>
    public void PushError(int code) => PushAck("error:" + code);

    /// <summary>Models grbl flushing its receive buffer (alarm, reset).</summary>
    public void FlushBufferModel()
    {
        lock (_gate)
        {
            _bufferedLines.Clear();
            BufferedBytes = _partialLineBytes;
        }
    }

    /// <summary>End of stream: the next read returns 0.</summary>
    public void EndStream() => _incoming.Writer.TryComplete();

    /// <summary>The next read throws <paramref name="error"/>.</summary>
    public void FailReads(Exception error) => _incoming.Writer.TryWrite(error);

    public byte[] Written()
    {
        lock (_gate)
        {
            return [.. _written];
        }
    }

    public string WrittenText() => Encoding.Latin1.GetString(Written());

    public int WriteCalls()
    {
        lock (_gate)
        {
            return _writes.Count;
        }
    }

    public int CountWritten(byte value) => Written().Count(b => b == value);

    /// <summary>Completes when <paramref name="condition"/> holds for what has been written.</summary>
    public Task WaitUntilAsync(Func<ScriptedTransport, bool> condition)
    {
        lock (_gate)
        {
            if (condition(this))
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((condition, signal));
            return signal.Task.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    public Task WaitForByteAsync(byte value, int count = 1) => WaitUntilAsync(t => t.CountWrittenUnlocked(value) >= count);

    public Task WaitForLinesAsync(int count) => WaitUntilAsync(t => t.CompleteLinesWritten >= count);

    private int CountWrittenUnlocked(byte value)
    {
        int n = 0;
        foreach (var b in _written)
        {
            if (b == value)
            {
                n++;
            }
        }

        return n;
    }

    private void PushAck(string text)
    {
        lock (_gate)
        {
            if (_bufferedLines.TryDequeue(out int bytes))
            {
                BufferedBytes -= bytes;
            }
        }

        PushLine(text);
    }

    private void CollectReady(List<TaskCompletionSource> ready)
    {
        // Caller holds _gate.
        for (int i = _waiters.Count - 1; i >= 0; i--)
        {
            if (_waiters[i].Condition(this))
            {
                ready.Add(_waiters[i].Signal);
                _waiters.RemoveAt(i);
            }
        }
    }
}
