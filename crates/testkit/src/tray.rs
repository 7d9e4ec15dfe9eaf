//! The app's tray icon as a desktop panel sees it: the StatusNotifierItem and its menu
//! (`com.canonical.dbusmenu`) that libayatana-appindicator exports on the session bus, read with
//! `dbus-send` from the Debian dbus package.

use std::process::Command;

/// Where Tauri's tray (tray-icon on libayatana-appindicator) exports the menu of the tray icon
/// with id `breakglass`.
pub const MENU_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_breakglass/Menu";

fn dbus_send(address: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("dbus-send")
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .args(["--session", "--print-reply", "--reply-timeout=2000"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `string "…"` values of `dbus-send --print-reply` output, in order.
fn strings(reply: &str) -> impl Iterator<Item = String> + '_ {
    reply.lines().filter_map(|l| {
        let start = l.find("string \"")? + "string \"".len();
        let end = l.rfind('"')?;
        (end >= start).then(|| l[start..end].to_owned())
    })
}

/// The labels of the tray menu's items, in order, from whichever connection on the bus at
/// `address` exports it; `None` when no connection does.
pub fn menu_labels(address: &str) -> Option<Vec<String>> {
    let names = dbus_send(
        address,
        &[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
        ],
    )?;
    let connections: Vec<String> = strings(&names).filter(|n| n.starts_with(':')).collect();
    connections.into_iter().find_map(|name| {
        let dest = format!("--dest={name}");
        let layout = dbus_send(
            address,
            &[
                &dest,
                MENU_PATH,
                "com.canonical.dbusmenu.GetLayout",
                "int32:0",
                "int32:-1",
                "array:string:",
            ],
        )?;
        Some(labels_of(&layout))
    })
}

/// The menu items' labels in a `GetLayout` reply: each item's properties come as
/// `string "label"` then `variant string "<text>"`.
fn labels_of(layout: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut next_is_label = false;
    for s in strings(layout) {
        if next_is_label {
            labels.push(s);
            next_is_label = false;
        } else {
            next_is_label = s == "label";
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_from_a_dbus_send_reply() {
        let reply = r#"method return time=1 sender=:1.1 -> destination=:1.9 serial=7 reply_serial=2
   uint32 2
   struct {
      int32 0
      array [
         dict entry(
            string "children-display"
            variant                   string "submenu"
         )
      ]
      array [
         variant                struct {
               int32 2
               array [
                  dict entry(
                     string "enabled"
                     variant                         boolean false
                  )
                  dict entry(
                     string "label"
                     variant                         string "Breakglass: 1 active grant; demo ends in 00:01:58"
                  )
               ]
               array [
               ]
            }
         variant                struct {
               int32 5
               array [
                  dict entry(
                     string "label"
                     variant                         string "Open Breakglass"
                  )
               ]
            }
      ]
   }
"#;
        assert_eq!(
            labels_of(reply),
            [
                "Breakglass: 1 active grant; demo ends in 00:01:58",
                "Open Breakglass"
            ]
        );
    }
}
