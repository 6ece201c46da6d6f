namespace XenAoe.Agents.Configuration;

/// <summary>
/// One setting of a daemon: its key in <c>/etc/xenaoe/ROLE.conf</c> (and as <c>XENAOE_KEY</c> in the environment), the
/// command-line flag that overrides both, its default as documented, and what it does. The CLI builds its flags from these,
/// and <c>xenaoe config example ROLE</c> prints them as the commented example file.
/// </summary>
/// <param name="Name">Key in the file: lower case, words joined by '_'.</param>
/// <param name="Default">The default as a reader should see it; empty: none (unset).</param>
/// <param name="Multiple">A list: comma- or space-separated in the file, the flag repeated on the command line.</param>
/// <param name="Alias">Short flag, e.g. <c>-i</c>.</param>
public sealed record ConfigKey(string Name, string Default, string Description, bool Multiple = false, string? Alias = null)
{
    /// <summary>The command-line flag: <c>--</c> and the key with '-' for '_'; <c>interfaces</c> is <c>--interface</c>, one per flag.</summary>
    public string Flag => "--" + (Multiple && Name.EndsWith('s') ? Name[..^1] : Name).Replace('_', '-');

    public string EnvironmentVariable => DaemonSettings.EnvironmentPrefix + Name.ToUpperInvariant();
}

/// <summary>A daemon's settings: the file it reads by default and every key it knows.</summary>
public sealed record ConfigSchema(string Role, IReadOnlyList<ConfigKey> Keys)
{
    public string DefaultFile => Path.Combine(DaemonSettings.ConfigDirectory, Role + ".conf");

    public ConfigKey this[string name] => Keys.FirstOrDefault(k => k.Name == name) ?? throw new KeyNotFoundException($"no key '{name}' in the {Role} schema");

    /// <summary>The commented example shipped as <see cref="DefaultFile"/>: every key, commented out, at its default.</summary>
    public string Example()
    {
        var text = new System.Text.StringBuilder();
        text.Append("# /etc/xenaoe/").Append(Role).Append(".conf: settings of xenaoe-").Append(Role).Append(".service (`xenaoe ").Append(Role)
            .Append(" serve`).\n# Precedence: this file, then XENAOE_<KEY> environment variables, then command-line flags. Every key is\n")
            .Append("# shown at its default; uncomment to change. Lists are comma- or space-separated. See docs/CONFIGURATION.md.\n");
        foreach (var key in Keys)
        {
            text.Append('\n');
            foreach (var line in Wrap(key.Description, 116))
                text.Append("# ").Append(line).Append('\n');
            text.Append('#').Append(key.Name).Append(" = ").Append(key.Default).Append('\n');
        }
        return text.ToString();
    }

    private static IEnumerable<string> Wrap(string text, int width)
    {
        var line = new System.Text.StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line.ToString();
                line.Clear();
            }
            if (line.Length > 0)
                line.Append(' ');
            line.Append(word);
        }
        if (line.Length > 0)
            yield return line.ToString();
    }
}
