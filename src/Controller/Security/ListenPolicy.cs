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
            var loopback = IsLoopback(url);
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

    /// <summary>127.0.0.0/8, ::1 or "localhost".</summary>
    public static bool IsLoopback(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (url.IsLoopback) return true;
        return IPAddress.TryParse(url.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip);
    }
}
