using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;

namespace SmpRobot.Controller.Services;

/// <summary>
/// The Watch messages of a publication, built once and written to every watcher of the session
/// (the messages are never modified after they are built). Two variants: without a message, and
/// with the phase and its reason (for a watcher that last saw another phase or reason).
/// </summary>
internal sealed class SessionEventCache(GantryConnection gantry, SafetySupervisor safety, SafetySwitches switches, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (PublishedSnapshot Source, Lazy<Variants> Events)> _latest = new(StringComparer.Ordinal);

    /// <summary>The messages of <paramref name="published"/>.</summary>
    public Variants For(PublishedSnapshot published)
    {
        Lazy<Variants> events;
        var id = published.Snapshot.Record.Id;
        lock (_gate)
        {
            if (!_latest.TryGetValue(id, out var cached) || !ReferenceEquals(cached.Source, published))
            {
                // Only newer publications replace the cached one (a slow watcher may still hold an older one).
                if (_latest.TryGetValue(id, out cached) && cached.Source.Version > published.Version)
                {
                    return Build(published);
                }
                cached = (published, new Lazy<Variants>(() => Build(published), LazyThreadSafetyMode.ExecutionAndPublication));
                _latest[id] = cached;
            }
            events = cached.Events;
        }
        return events.Value;
    }

    private Variants Build(PublishedSnapshot published)
    {
        var plain = new SessionEvent
        {
            Session = Mapping.ToProto(published.Snapshot),
            Machine = Mapping.ToProto(gantry, safety, time.GetUtcNow(), switches),
            At = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(time.GetUtcNow()),
        };
        var record = published.Snapshot.Record;
        var phase = plain.Clone();
        phase.Message = SessionManager.Name(record.Phase) + (record.Reason.Length > 0 ? ": " + record.Reason : "");
        return new Variants(plain, phase);
    }

    /// <param name="Plain">No message.</param>
    /// <param name="PhaseChange">The message names the phase and its reason.</param>
    public sealed record Variants(SessionEvent Plain, SessionEvent PhaseChange);
}
