using Grpc.Core;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Caps the long-lived streams that follow the machine (session and machine-status watches) per
/// HTTP/2 connection and in total, so watchers can never use up a connection's stream limit
/// (Kestrel allows 100 per connection) or the controller's time: a watch beyond a cap is refused
/// with RESOURCE_EXHAUSTED naming the limit. Safety calls are never counted.
/// </summary>
public sealed class WatchLimiter(int maxPerConnection, int maxTotal)
{
    /// <summary>Default cap per connection: leaves the other 84 of Kestrel's 100 streams for everything else.</summary>
    public const int DefaultMaxPerConnection = 16;

    /// <summary>Default cap over all connections.</summary>
    public const int DefaultMaxTotal = 256;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, int> _perConnection = new(StringComparer.Ordinal);
    private int _total;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Watches open now, over all connections.</summary>
    public int Open { get { lock (_gate) return _total; } }

    /// <summary>Completes when the next slot is given back (a watch ended): wait on it instead of retrying.</summary>
    public Task NextRelease { get { lock (_gate) return _released.Task; } }

    /// <summary>Takes a slot for a watch on <paramref name="connectionId"/>; dispose it when the watch ends.</summary>
    /// <exception cref="RpcException">RESOURCE_EXHAUSTED when a cap is reached.</exception>
    public IDisposable Acquire(string connectionId)
    {
        lock (_gate)
        {
            _perConnection.TryGetValue(connectionId, out var onConnection);
            if (onConnection >= maxPerConnection)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"too many watches on this connection: at most {maxPerConnection} per connection (smp-controller --max-watches-per-connection); close one or open another connection"));
            }
            if (_total >= maxTotal)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"too many watches: at most {maxTotal} in all (smp-controller --max-watches)"));
            }
            _perConnection[connectionId] = onConnection + 1;
            _total++;
        }
        return new Slot(this, connectionId);
    }

    private void Release(string connectionId)
    {
        TaskCompletionSource released;
        lock (_gate)
        {
            _total--;
            if (--_perConnection[connectionId] == 0) _perConnection.Remove(connectionId);
            released = _released;
            _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        released.TrySetResult();
    }

    private sealed class Slot(WatchLimiter owner, string connectionId) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) owner.Release(connectionId);
        }
    }
}
