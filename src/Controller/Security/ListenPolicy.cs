using System.Net;

namespace SmpRobot.Controller.Security;

/// <summary>
/// Where the controller may listen, and how: a loopback address may go without TLS (and, only with
/// --insecure-loopback, without authentication); any other address needs TLS (https, with --tls-cert and
/// --tls-key) and tokens. Checked before the host starts, so a bad combination is refused naming the flag to add.
/// </summary>
public static class ListenPolicy
{
    /// <summary>Throws ArgumentException saying what to change when <paramref name="urls"/> may not be served this way.</summary>
    public static void Check(string urls, bool insecureLoopback, bool haveCertificate)
    {
        ArgumentNullException.ThrowIfNull(urls);
        foreach (var text in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                throw new ArgumentException($"--urls '{text}' is not an http:// or https:// address");
            }
            var loopback = IsLoopback(text);
            var tls = url.Scheme == "https";
            if (insecureLoopback && (!loopback || tls))
            {
                throw new ArgumentException($"--insecure-loopback serves without TLS or authentication and only on a loopback address (http://127.0.0.1:PORT), not on {text}: drop --insecure-loopback and give --tls-cert and --tls-key (smp-controller cert create makes them)");
            }
            if (!loopback && !tls)
            {
                throw new ArgumentException($"listening on {text} (not loopback) needs TLS: use https://{url.Authority} with --tls-cert FILE --tls-key FILE (smp-controller cert create makes them)");
            }
            if (tls && !haveCertificate)
            {
                throw new ArgumentException($"{text} is https: give the chair's certificate and key with --tls-cert FILE --tls-key FILE (smp-controller cert create makes them)");
            }
        }
    }

    /// <summary>
    /// True when the address as written (what Kestrel binds) is a loopback IP (127.0.0.0/8, ::1) or exactly
    /// "localhost". Not <see cref="Uri.IsLoopback"/>: Uri rewrites the host "loopback" to "localhost", while Kestrel takes
    /// such a name as "any interface".
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1054", Justification = "the address as written is the point: Uri rewrites hosts Kestrel reads otherwise")]
    public static bool IsLoopback(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return false;
        var rest = url[(scheme + 3)..];
        string host;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) return false;
            host = rest[1..close];
        }
        else
        {
            var end = rest.IndexOfAny([':', '/']);
            host = end < 0 ? rest : rest[..end];
        }
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip);
    }
}
