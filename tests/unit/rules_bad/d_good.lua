function fine() return "fine" end
