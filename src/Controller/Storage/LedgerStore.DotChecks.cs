namespace SmpRobot.Controller.Storage;

/// <summary>The camera's check of a session's dots, as recorded (<see cref="LedgerStore.RecordDotCheck"/>): how many dots had each result.</summary>
/// <param name="OnTarget">Seen within the tolerance of their target.</param>
/// <param name="OffTarget">Seen farther than the tolerance: flagged.</param>
/// <param name="NotSeen">Not seen where they were placed: flagged.</param>
public sealed record DotCheckTally(int OnTarget, int OffTarget, int NotSeen)
{
    /// <summary>Dots the camera judged (each result but not checked).</summary>
    public int Checked => OnTarget + OffTarget + NotSeen;

    /// <summary>Dots flagged for the operator: off target or not seen.</summary>
    public int Flagged => OffTarget + NotSeen;
}

public sealed partial class LedgerStore
{
    /// <summary>How many of the session's dots the camera's check recorded on target, off target and not seen (all zero for a session outside a treatment or never checked).</summary>
    public DotCheckTally CheckTally(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            var counts = new int[4];
            using var cmd = Command(null, "SELECT check_result, COUNT(*) FROM dot_records WHERE session_id = @s AND check_result <> 0 GROUP BY check_result", ("@s", sessionId));
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                var result = reader.GetInt32(0);
                if (result is >= 1 and <= 3) counts[result] = reader.GetInt32(1);
            }
            return new DotCheckTally(counts[(int)DotCheckResult.OnTarget], counts[(int)DotCheckResult.OffTarget], counts[(int)DotCheckResult.NotSeen]);
        });
    }
}
