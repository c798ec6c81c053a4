using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Security;

/// <summary>An authenticated caller.</summary>
/// <param name="Name">The user's name ("insecure-loopback" on a development controller).</param>
/// <param name="Role">What it may do.</param>
public sealed record CallerIdentity(string Name, Role Role)
{
    /// <summary>Every caller of a controller started with --insecure-loopback: no token asked, every role.</summary>
    public static CallerIdentity InsecureLoopback { get; } = new("insecure-loopback", Role.Admin);
}

/// <summary>
/// The active users' token hashes in memory, so authenticating a call (the e-stop's among them) never waits for the
/// store: a dictionary lookup of the token's SHA-256. Reloaded at once after a change made through the controller,
/// and within <see cref="PollInterval"/> after one made by another process on the same store
/// (<c>smp-controller user add</c> or <c>revoke</c> while the controller runs, or another chair on a shared PostgreSQL
/// store), seen through <see cref="LedgerStore.DataVersion"/>: SQLite's data_version, or PostgreSQL's users counter.
/// </summary>
public sealed partial class UserDirectory : IDisposable
{
    /// <summary>How often the store is asked whether another process changed it.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private readonly LedgerStore _store;
    private readonly ITimer _poll;
    private readonly Lock _reload = new();
    private volatile FrozenDictionary<string, CallerIdentity> _byTokenHash = FrozenDictionary<string, CallerIdentity>.Empty;
    private long _dataVersion = long.MinValue;

    private readonly ILogger _log;

    /// <param name="store">Where the users are.</param>
    /// <param name="timeProvider">The poll's clock.</param>
    /// <param name="log">Where a poll that failed for another reason than an unreachable or busy store is said (default: nowhere).</param>
    public UserDirectory(LedgerStore store, TimeProvider timeProvider, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _log = log ?? NullLogger.Instance;
        Reload();
        _poll = timeProvider.CreateTimer(_ => Poll(), null, PollInterval, PollInterval);
    }

    /// <summary>Active users.</summary>
    public int Count => _byTokenHash.Count;

    /// <summary>The identity whose token is <paramref name="token"/>, or null (unknown, revoked, malformed).</summary>
    public CallerIdentity? Authenticate(string token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > AccessTokens.MaxLength || !token.StartsWith(AccessTokens.Prefix, StringComparison.Ordinal)) return null;
        return _byTokenHash.GetValueOrDefault(AccessTokens.Hash(token));
    }

    /// <summary>Reads the users again (after a change through the controller).</summary>
    public void Reload()
    {
        lock (_reload)
        {
            _dataVersion = _store.DataVersion();
            _byTokenHash = _store.ListUsers()
                .Where(u => u.RevokedAt is null)
                .ToFrozenDictionary(u => u.TokenSha256, u => new CallerIdentity(u.Name, Roles.Parse(u.Role)), StringComparer.Ordinal);
        }
    }

    private void Poll()
    {
        try
        {
            if (_store.DataVersion() != Volatile.Read(ref _dataVersion)) Reload();
        }
        catch (ObjectDisposedException)
        {
            // The controller is stopping.
        }
        catch (Microsoft.Data.Sqlite.SqliteException)
        {
            // The store is busy (another process writes): look again at the next tick. A timer callback must not throw.
        }
        catch (StoreUnavailableException)
        {
            // The PostgreSQL server is unreachable: the users known stay as they are until it answers again.
        }
#pragma warning disable CA1031 // last resort of a timer callback: an exception left there ends the whole controller; the users known stay as they are
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.PollFailed(_log, e);
        }
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Error, Message = "Reading the users again failed; the users known stay as they are, and the next poll looks again")]
        public static partial void PollFailed(ILogger log, Exception error);
    }

    public void Dispose() => _poll.Dispose();
}
