using Grpc.Core;
using SmpRobot.Controller.Security;

namespace SmpRobot.Controller.Services;

/// <summary>Who made a call, for the records that must say so (resolutions, e-stop resets, calibrations, overrides).</summary>
internal static class Callers
{
    /// <summary>
    /// The authenticated user's name; with a different name the caller typed (an operator field), both:
    /// "alice (as \"Dr Smith\")". On a development controller (--insecure-loopback) nobody is authenticated, so the
    /// typed name is all there is (and is returned as it is, empty or not).
    /// </summary>
    public static string Recorded(ServerCallContext context, string declared)
    {
        ArgumentNullException.ThrowIfNull(context);
        var who = TokenAuthenticationHandler.IdentityOf(context.GetHttpContext().User);
        if (who is null || who == CallerIdentity.InsecureLoopback) return declared;
        return string.IsNullOrWhiteSpace(declared) || declared == who.Name ? who.Name : $"{who.Name} (as \"{declared}\")";
    }

    /// <summary>Notes that start with who made the record: "by alice (engineer): NOTES"; the notes alone on a development controller.</summary>
    public static string StampNotes(ServerCallContext context, string notes)
    {
        ArgumentNullException.ThrowIfNull(context);
        var who = TokenAuthenticationHandler.IdentityOf(context.GetHttpContext().User);
        if (who is null || who == CallerIdentity.InsecureLoopback) return notes;
        return $"by {who.Name} ({who.Role.Name()})" + (string.IsNullOrWhiteSpace(notes) ? "" : ": " + notes);
    }
}
